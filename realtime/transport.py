"""The send-buffer contract between the engine and the servers that run it.

A real server (servers.ws_uvicorn, servers.ws_daphne) shows the consumer its
socket's outgoing buffer as the ASGI scope extension `qw.send_buffer`, an
object of the `SendBuffer` shape below; in-process test sockets have none.
Neither server is imported here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

logger = logging.getLogger("quantumworks.ws")

SEND_BUFFER_EXTENSION = "qw.send_buffer"
# A `FastSend`: writes a text frame to the socket at once (the fan-out fast lane).
FAST_SEND_EXTENSION = "qw.fast_send"
# The `realtime.mailbox.Mailbox` the server's `receive` reads: the channel layer
# puts the socket's queued group messages into it too (one inbox, one task).
MAILBOX_EXTENSION = "qw.mailbox"

# A `FastSend` for the heartbeat frame that also carries the server's
# WebSocket keepalive (servers.ws_uvicorn): a ping rides with each heartbeat,
# and a socket whose previous ping got no pong by the next heartbeat is closed.
HEARTBEAT_SEND_EXTENSION = "qw.heartbeat_send"
SLOW_CONSUMER_CODE = 4008

# After our close, the client has this long to reply before TCP is dropped.
# The 4008 close frame sits behind up to a budget of unread data: a client that
# reads again within this time still sees the code and resumes; one that
# never reads is dropped and its buffer freed.
SLOW_CONSUMER_CLOSE_SECONDS = 5
TOO_LARGE_REASON = "too_large"


def log_oversized_frame(size: int | None, limit: int, client: str) -> None:
    logger.warning(
        "ws refused: frame of %s bytes over the %s byte limit from %s (close 1009 too_large)",
        size if size is not None else "more",
        limit,
        client,
    )


class FastSend(Protocol):
    def __call__(self, text: str) -> bool:
        """Write one text frame now, without awaiting; False if the socket cannot take it."""
        ...


class SendBuffer(Protocol):
    """What realtime.consumers reads of a socket's outgoing buffer."""

    # The buffer passed half the per-socket send budget: a flag set by the
    # transport, so the common case costs one attribute read per frame.
    paused: bool

    @property
    def open(self) -> bool: ...

    def pending(self) -> int:
        """Bytes written by the application that have not reached the kernel yet."""
        ...

    async def wait_drained(self, seconds: float) -> bool:
        """Wait until the buffer has drained after a pause; False if it did not in time."""
        ...


class DrainableBuffer:
    """The pause flag and the wait for a drain; subclasses say what `pending` and `open` mean."""

    def __init__(self) -> None:
        self.paused = False
        self.closed = False
        self._drained: asyncio.Future[None] | None = None

    @property
    def open(self) -> bool:
        raise NotImplementedError

    def pending(self) -> int:
        """Bytes written by the application that have not reached the kernel yet."""
        raise NotImplementedError

    async def wait_drained(self, seconds: float) -> bool:
        """Wait until the buffer has drained after a pause; False if it did not in time."""
        if self.paused and not self.closed:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), seconds)
            except TimeoutError:
                return False
        return self.open

    def _wake(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def resumed(self) -> None:
        self.paused = False
        self._wake()

    def connection_closed(self) -> None:
        self.closed = True
        self.paused = False
        self._wake()
