"""What a request may send before its headers end, on both servers (issue 20).

A process exposed without nginx in front must refuse a hostile request head
itself, quickly and cheaply, instead of holding a connection slot for it:

- a request line over `MAX_LINE_BYTES` gets 414, a header line over it 431:
  websockets' own limits (`websockets.http11.MAX_LINE_LENGTH`, 8 KiB, the
  size of nginx's `large_client_header_buffers` too), now applied by daphne
  as well;
- more than `MAX_HEADERS` headers (websockets' 128) get 431;
- a head over `MAX_HEAD_BYTES` in all gets 431 as soon as that much arrived
  (uvicorn's httptools parser has no limit of its own);
- a head not complete `settings.QW_HEADER_TIMEOUT_SECONDS` after the
  connection opened (or after the previous response) gets 408 and is closed;
  a connection that sent nothing at all is closed without an answer.

Each refusal writes one log line. Behind nginx, `client_header_timeout` and
`large_client_header_buffers` answer first (docs/deployment.md).
"""

from __future__ import annotations

import logging

from websockets.http11 import MAX_LINE_LENGTH, MAX_NUM_HEADERS

logger = logging.getLogger("quantumworks.http")

MAX_LINE_BYTES = MAX_LINE_LENGTH
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = MAX_NUM_HEADERS

REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


def refusal(status: int) -> bytes:
    """A complete response that ends the connection."""
    return (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n" % (status, REASONS[status])
    )


def header_timeout() -> float:
    from django.conf import settings

    return settings.QW_HEADER_TIMEOUT_SECONDS


def log_refused(status: int | None, why: str, client: str) -> None:
    """One line per refusal; `status` None when the connection is closed with no answer."""
    logger.warning("http refused: %s from %s (%s)", why, client, status or "closed")
