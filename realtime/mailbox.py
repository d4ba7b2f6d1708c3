"""A socket's one inbox: what the client sent and what the channel layer queued for it.

channels gives every consumer two `asyncio.Queue`s (the ASGI server's and the
layer's, four deques and an `Event` each: ≈ 3.3 KiB per queue, W1 tracemalloc)
and `await_many_dispatch` two tasks waiting on them, recreated after every
message. A `Mailbox` is the one FIFO both write into: it holds no deque while
empty (an idle socket's usual state) and has one reader, the consumer's own
task (realtime.consumers), so it needs one future, not a list of waiters.

Order: the consumer dispatches messages in the order they were put, whichever
source they came from — as await_many_dispatch did for messages that were
both ready.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any


class Mailbox:
    """`get` / `put_nowait` / `empty` / `qsize` of `asyncio.Queue`, unbounded, for one reader."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        items = self._items
        if items is None:
            items = self._items = deque()
        items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("a Mailbox has one reader")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        items = self._items
        item = items.popleft()
        if not items:
            self._items = None  # an idle socket keeps no deque
        return item

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0
