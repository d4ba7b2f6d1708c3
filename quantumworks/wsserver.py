"""What our two WebSocket server protocols share (daphne: quantumworks.wsprotocol,
uvicorn: quantumworks.ws_uvicorn); neither server is imported here.

The send buffer shown to the consumer as `qw.send_buffer`:
quantumworks.consumers reads four things: `paused` (the buffer passed half the
per-socket send budget; a flag set by the transport, so the common case costs
one attribute read per frame), `pending()` (the bytes not yet handed to the
kernel), `wait_drained(seconds)` and `open`.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger("quantumworks.ws")

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
