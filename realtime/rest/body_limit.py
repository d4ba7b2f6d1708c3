"""The largest HTTP request body the process reads, enforced before Django reads it.

Django's ASGI handler reads a whole body (spooled to a temporary file past
FILE_UPLOAD_MAX_MEMORY_SIZE) before any view runs, so a view's own limit
(the attachment upload's 413) comes after the bytes were taken in. Here a
declared Content-Length over the limit is answered 413 at once, without
reading the body; a body sent without a length (chunked) is cut off where
it passes the limit and answered 413 too. nginx does the same in front (`client_max_body_size`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

logger = logging.getLogger("quantumworks.http")

Scope = dict[str, Any]


class RequestBodyLimit:
    def __init__(self, app: Any, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            logger.warning(
                "refused %s %s: a body of %s bytes (the limit is %d)",
                scope.get("method"),
                scope.get("path"),
                declared.decode(),
                self.limit,
            )
            await _too_large(send, self.limit)
            return
        received = 0
        overflowed = False
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Django ends the request quietly on a disconnect (RequestAborted);
                    # the 413 is sent below.
                    overflowed = True
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, tracked_send)
        if overflowed and not started:
            logger.warning(
                "cut off %s %s: the body passed %d bytes",
                scope.get("method"),
                scope.get("path"),
                self.limit,
            )
            await _too_large(send, self.limit)


async def _too_large(send: Any, limit: int) -> None:
    body = orjson.dumps({"detail": f"The request body is over the {limit}-byte limit."})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
