"""One Redis round trip for the same request from many sockets in one loop iteration.

A burst of connects (W1: 500/s) runs the same per-socket Redis request many
times within an event-loop iteration: the token's revocation GET, the presence
touch. `LoopBatcher.submit` queues one item and waits; the first submit of an
iteration schedules a flush that runs after the others have queued theirs
(`asyncio.sleep(0)`) and answers all of them from one call of `flush` (e.g. an
MGET, one script call). Items queued while a flush awaits Redis go in the
next flush. A flush that raises raises in every waiting submit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class LoopBatcher(Generic[Item, Result]):
    def __init__(self, flush: Callable[[list[Item]], Awaitable[list[Result]]]) -> None:
        self.flush = flush
        self._waiting: dict[
            asyncio.AbstractEventLoop, list[tuple[Item, asyncio.Future[Result]]]
        ] = {}
        self._flushes: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        waiting = self._waiting.get(loop)
        if waiting is None:
            for closed in [known for known in self._waiting if known.is_closed()]:
                del self._waiting[closed]
            waiting = self._waiting[loop] = []
            task = loop.create_task(self._flush(loop))
            self._flushes.add(task)  # a task nobody references may be collected mid-flight
            task.add_done_callback(self._flushes.discard)
        future: asyncio.Future[Result] = loop.create_future()
        waiting.append((item, future))
        return await future

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        await asyncio.sleep(0)  # the rest of this iteration queues its items
        batch = self._waiting.pop(loop, [])
        try:
            results = await self.flush([item for item, _ in batch])
        except Exception as error:  # noqa: BLE001 (each waiting caller gets it)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
