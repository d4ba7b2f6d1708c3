"""Our uvicorn HTTP protocol: the request-head limits of servers.request_head.

uvicorn's httptools protocol reads a request head of any size, for as long as
the client likes: llhttp has no size limit and uvicorn no timer before the
first request (its keep-alive timer runs only between requests). A WebSocket
upgrade is parsed here first, then handed whole to servers.ws_uvicorn, so
these limits guard the socket path too.
"""

from __future__ import annotations

import asyncio

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from servers.request_head import (
    MAX_HEAD_BYTES,
    MAX_LINE_BYTES,
    header_timeout,
    log_refused,
    refusal,
)


class HeadRefused(Exception):
    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


class QWHttpToolsProtocol(HttpToolsProtocol):
    head_timer: asyncio.TimerHandle | None = None
    head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_head_timer()
        super().connection_lost(exc)

    def start_head_timer(self) -> None:
        self.head_bytes = 0
        self.head_timer = self.loop.call_later(header_timeout(), self.head_timed_out)

    def stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head waits behind a response still being written.
            self.start_head_timer()
            return
        if self.head_bytes == 0:
            self.transport.close()  # an idle connection: nothing to answer
            return
        self.refuse(
            HeadRefused(408, f"request head not complete after {header_timeout():g} s"),
        )

    def refuse(self, refused: HeadRefused) -> None:
        self.stop_head_timer()
        log_refused(refused.status, refused.why, self.client[0] if self.client else "?")
        self.transport.write(refusal(refused.status))
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        # uvicorn's, with the head limits; its 400 for anything else stays.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            if isinstance(error.__context__, HeadRefused):
                self.refuse(error.__context__)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        if self.head_timer is not None:  # a head still arriving (or just begun)
            self.head_bytes += len(data)
            try:
                self.check_partial_head()
            except HeadRefused as refused:
                self.refuse(refused)

    def check_partial_head(self) -> None:
        """A head still arriving: refuse as soon as it is certain to be too long."""
        if len(self.url) > MAX_LINE_BYTES:
            raise HeadRefused(414, f"request line over {MAX_LINE_BYTES} bytes")
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HeadRefused(431, f"request head over {MAX_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_timer is None:
            self.start_head_timer()

    def on_headers_complete(self) -> None:
        self.stop_head_timer()
        # Request line: method, space, URL, space, HTTP/1.1.
        line = len(self.parser.get_method()) + len(self.url) + 10
        if line > MAX_LINE_BYTES:
            raise HeadRefused(414, f"request line of {line} bytes over {MAX_LINE_BYTES}")
        head = line
        for name, value in self.headers:
            size = len(name) + len(value) + 2
            if size > MAX_LINE_BYTES:
                raise HeadRefused(431, f"header line of {size} bytes over {MAX_LINE_BYTES}")
            head += size + 2
        if head > MAX_HEAD_BYTES:
            raise HeadRefused(431, f"request head of {head} bytes over {MAX_HEAD_BYTES}")
        super().on_headers_complete()
