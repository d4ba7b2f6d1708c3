"""The hand-over of layer messages from worker threads to the server's event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime import faults, metrics

logger = logging.getLogger(__name__)

PUBLISH_CONCURRENCY = 64
Messages = list[tuple[str, dict[str, Any]]]
Result = TypeVar("Result")


class Publisher:
    """Hands layer messages to the channel layer from sync or async code.

    Services run in worker threads; their on_commit callbacks hand the
    messages to the server's event loop without waiting (the consumer repairs
    any reordering from the database, SPEC §4.4). Outside a server (shell,
    management commands, sync tests) it sends synchronously.
    """

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.listeners: list[Callable[[list[tuple[str, dict[str, Any]]]], None]] = []
        self._pending: set[asyncio.Future[Any]] = set()
        self._collecting = threading.local()

    def collecting(self, func: Callable[..., Result]) -> Callable[..., tuple[Result, Messages]]:
        """`func` for a DB thread, returning what it published with its result.

        Its on_commit publishes are kept, not handed from the thread to the
        loop: the caller, back on the loop, publishes them (issue 18: the
        chat writer's batch saves a thread-to-loop hand-off, a wake-up of the
        loop, per batch). They were committed, so they are published even
        when `func` raises afterwards.
        """

        def call(*args: Any, **kwargs: Any) -> tuple[Result, Messages]:
            collected: Messages = []
            self._collecting.messages = collected
            try:
                result = func(*args, **kwargs)
            except BaseException:
                self._collecting.messages = None
                self.publish(collected)
                raise
            self._collecting.messages = None
            return result, collected

        return call

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def publish(self, messages: Messages) -> None:
        if not messages:
            return
        collected = getattr(self._collecting, "messages", None)
        if collected is not None:  # inside `collecting`: the caller publishes them
            collected.extend(messages)
            return
        for listener in list(self.listeners):
            listener(messages)
        loop = self.loop
        if loop is not None and loop.is_running() and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                task = loop.create_task(self._send(messages))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            else:
                future = asyncio.run_coroutine_threadsafe(self._send(messages), loop)
                future.add_done_callback(_log_failure)
            return
        async_to_sync(self._send)(messages)

    async def _send(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        # group_send_many even for one message: it records the latest seq of a
        # durable event in the same round trip (realtime.layers, the heartbeat's check).
        if hasattr(layer, "group_send_many"):
            try:
                await layer.group_send_many(messages)
            except Exception as error:  # the database keeps the events; clients catch up
                if not faults.report("publish", error):
                    logger.exception("publishing %d group messages failed", len(messages))
        elif len(messages) == 1:
            await self._send_one(layer, *messages[0])
        else:
            # One message per group here, so their relative order does not
            # matter; bounded so a 10,000-user announcement does not open
            # 10,000 Redis round trips at once.
            limit = asyncio.Semaphore(PUBLISH_CONCURRENCY)

            async def bounded(group: str, message: dict[str, Any]) -> None:
                async with limit:
                    await self._send_one(layer, group, message)

            await asyncio.gather(*(bounded(group, message) for group, message in messages))
        metrics.EVENTS_PUBLISHED.inc(len(messages))

    @staticmethod
    async def _send_one(layer: Any, group: str, message: dict[str, Any]) -> None:
        try:
            await layer.group_send(group, message)
        except Exception as error:  # the database keeps the event; clients resume
            if not faults.report("publish", error):
                logger.exception("group_send to %s failed", group)


def _log_failure(future: Any) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None and not faults.report("publish", error):
        logger.error("publishing failed: %r", error)


publisher = Publisher()
