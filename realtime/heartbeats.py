"""One process-wide heartbeat for every open socket, done in batches.

Every `QW_HEARTBEAT_SECONDS` each socket gets a `heartbeat` frame, its
presence entry is pushed forward, and its last sent seq is compared with its
inbox (the catch-up for a lost *last* doorbell, SPEC §4). A task per socket
doing that alone cost, at 10,000 idle sockets, a coroutine and a timer each
(memory) and 333 database queries and Redis round trips a second (CPU).

Here one task per event loop keeps the sockets in a queue ordered by when
each is due (a socket is appended with `now + interval`, so the queue stays
sorted) and, on each tick, beats every socket that is due at once: one
serialized frame, one pipelined presence refresh and one inbox query for the
whole batch. Sockets stay spread over the interval as they connected, so the
beats do not come in one burst.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Protocol

from django.conf import settings
from django.utils import timezone

from realtime import faults, metrics, registry
from realtime.db import run_db
from realtime.frames import dumps, iso
from realtime.selectors import inbox_last_seqs


class Beating(Protocol):
    """What the wheel needs of a socket (realtime.consumers.RealtimeConsumer)."""

    user_id: int
    closing: bool

    async def send(self, text_data: str) -> None: ...

    def write_now(self, text: str) -> bool: ...

    def after_heartbeat(self, last_seq: int) -> None: ...


logger = logging.getLogger(__name__)

# How late a beat may be, as a share of the interval (the tick period).
TICK_SHARE = 0.1
MAX_TICK_SECONDS = 1.0


class HeartbeatWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: deque[tuple[float, Beating]] = deque()
        self.members: set[Beating] = set()
        self.task: asyncio.Task[None] | None = None
        self.interval = float(settings.QW_HEARTBEAT_SECONDS)

    def add(self, consumer: Beating) -> None:
        self.members.add(consumer)
        self.due.append((time.monotonic() + settings.QW_HEARTBEAT_SECONDS, consumer))
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._run())

    def discard(self, consumer: Beating) -> None:
        # Its queue entry is skipped when it comes up (no O(n) removal).
        self.members.discard(consumer)

    async def _run(self) -> None:
        while self.members:
            interval = float(settings.QW_HEARTBEAT_SECONDS)
            await asyncio.sleep(min(interval * TICK_SHARE, MAX_TICK_SECONDS))
            now = time.monotonic()
            if interval != self.interval:
                self._reschedule(interval, now)
            batch: list[Beating] = []
            while self.due and (self.due[0][0] <= now or self.due[0][1] not in self.members):
                _, consumer = self.due.popleft()
                if consumer in self.members and not consumer.closing:
                    batch.append(consumer)
                    self.due.append((now + interval, consumer))
            if batch:
                try:
                    await beat(batch)
                except Exception as error:
                    # A Redis or database hiccup must not stop the heartbeats.
                    if not faults.report("heartbeat", error):
                        logger.exception("heartbeat of %d sockets failed", len(batch))
        self.due.clear()

    def _reschedule(self, interval: float, now: float) -> None:
        """The interval changed (settings in tests): keep the queue sorted by due time."""
        self.interval = interval
        entries = [(min(due, now + interval), c) for due, c in self.due if c in self.members]
        self.due = deque(sorted(entries, key=lambda entry: entry[0]))


async def beat(consumers: list[Beating]) -> None:
    text = dumps({"type": "heartbeat", "timestamp": iso(timezone.now())})
    for consumer in consumers:
        # One frame for the whole batch, written at once where the server allows it.
        if not consumer.write_now(text):
            await consumer.send(text_data=text)
    metrics.FRAMES_OUT.labels("heartbeat").inc(len(consumers))
    for hook in registry.socket_alive:
        await hook(consumers)
    live = [consumer for consumer in consumers if not consumer.closing]
    if not live:
        return
    current = await run_db(inbox_last_seqs)([consumer.user_id for consumer in live])
    for consumer in live:
        consumer.after_heartbeat(current.get(consumer.user_id, 0))


_wheels: dict[asyncio.AbstractEventLoop, HeartbeatWheel] = {}


def wheel() -> HeartbeatWheel:
    loop = asyncio.get_running_loop()
    found = _wheels.get(loop)
    if found is None:
        for old in [known for known in _wheels if known.is_closed()]:
            del _wheels[old]
        found = _wheels[loop] = HeartbeatWheel(loop)
    return found
