"""The graceful stop both server flavours install on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

logger = logging.getLogger("quantumworks.serve")


def graceful_stop(finish: Callable[[], None]) -> Callable[..., None]:
    """A signal handler: close every socket with 4012, then `finish()` (stop the server).

    Runs at most once; a hard exit follows after 5 s if the graceful one hangs.
    """
    started = False

    def stop(signum, frame) -> None:
        nonlocal started
        if started:
            return
        started = True
        # A hard stop if the graceful one hangs: the spec promises exit within 5 s.
        signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
        signal.alarm(5)
        logger.info("signal %s: closing sockets with 4012", signum)
        loop = asyncio.get_event_loop()

        async def shutdown() -> None:
            from realtime.consumers import close_all_for_restart

            try:
                await asyncio.wait_for(close_all_for_restart(), timeout=3)
                await asyncio.sleep(0.3)  # let the close frames leave
            finally:
                finish()

        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(shutdown()))

    return stop
