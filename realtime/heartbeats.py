"""One process-wide heartbeat for every open socket, done in batches.

Every `QW_HEARTBEAT_SECONDS` each socket gets a `heartbeat` frame, its
presence entry is pushed forward, and its last sent seq is compared with its
inbox (the catch-up for a lost *last* doorbell, SPEC §4). A task per socket
doing that alone cost, at 10,000 idle sockets, a coroutine and a timer each
(memory) and 333 database queries and Redis round trips a second (CPU).

Here one task per event loop keeps the sockets in a queue ordered by when
each is due (a socket is appended with `now + interval`, so the queue stays
sorted) and, on each tick, beats every socket that is due at once: one
serialized frame, one pipelined presence refresh and one catch-up read for
the whole batch. Sockets stay spread over the interval as they connected, so
the beats do not come in one burst.

The catch-up read touches no database (issue 18): each publish of durable
events records the group's latest seq in Redis in the publish's own round trip
(realtime.layers `latest_seqs`, only ever raised), and a tick reads its users'
seqs with one ZMSCORE. The database still answers where Redis cannot be
trusted to know:
- a user Redis has no seq for (never published to since the key was made, or
  Redis lost it): read from the inbox and recorded (ZADD GT, so a seq read
  before a concurrent publish can never lower the published one), so the next
  tick of that user needs no database;
- a whole interval of ticks after a Redis failure in this process (a publish
  that failed wrote neither the doorbell nor the seq; a pub/sub reader that
  reconnected missed doorbells);
- one interval in every `AUDIT_INTERVALS` (a publish that failed in *another*
  process, which this one cannot see): a lost last event whose seq Redis
  never heard of is still sent within `AUDIT_INTERVALS` heartbeats, and the
  audit's reads raise the stale seqs in Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Protocol

from channels.layers import get_channel_layer
from django.conf import settings
from django.utils import timezone

from realtime import faults, metrics, registry
from realtime.db import run_db
from realtime.frames import dumps, iso
from realtime.outbox import user_group
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
# Every this many intervals, one interval of ticks reads the inbox instead of Redis.
AUDIT_INTERVALS = 10


class HeartbeatWheel:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.due: deque[tuple[float, Beating]] = deque()
        self.members: set[Beating] = set()
        self.task: asyncio.Task[None] | None = None
        self.interval = float(settings.QW_HEARTBEAT_SECONDS)
        # A socket is up to date with its inbox when it connects (replay): the
        # first audit comes AUDIT_INTERVALS after the wheel starts.
        self.audit_until = float("-inf")
        self.next_audit = time.monotonic() + AUDIT_INTERVALS * self.interval

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
                    await beat(batch, audit=self._audit(now, interval))
                except Exception as error:
                    # A Redis or database hiccup must not stop the heartbeats.
                    if not faults.report("heartbeat", error):
                        logger.exception("heartbeat of %d sockets failed", len(batch))
        self.due.clear()

    def _audit(self, now: float, interval: float) -> bool:
        """Whether this tick's catch-up reads the inbox instead of Redis (see the module doc)."""
        # min(): a shorter interval (settings in tests) brings the next audit closer.
        self.next_audit = min(self.next_audit, now + AUDIT_INTERVALS * interval)
        if now >= self.next_audit:
            self.audit_until = now + interval
            self.next_audit = now + AUDIT_INTERVALS * interval
        return now < self.audit_until or now - faults.REDIS.last_failure_at < interval

    def _reschedule(self, interval: float, now: float) -> None:
        """The interval changed (settings in tests): keep the queue sorted by due time."""
        self.interval = interval
        entries = [(min(due, now + interval), c) for due, c in self.due if c in self.members]
        self.due = deque(sorted(entries, key=lambda entry: entry[0]))


async def beat(consumers: list[Beating], *, audit: bool = False) -> None:
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
    current = await current_seqs(sorted({consumer.user_id for consumer in live}), audit=audit)
    for consumer in live:
        consumer.after_heartbeat(current.get(consumer.user_id, 0))


async def current_seqs(user_ids: list[int], *, audit: bool = False) -> dict[int, int]:
    """Each user's latest seq: from Redis where it is known, else from the inbox."""
    layer = get_channel_layer()
    if not hasattr(layer, "latest_seqs"):
        return await run_db(inbox_last_seqs)(user_ids)
    missing = user_ids
    current: dict[int, int] = {}
    if not audit:
        try:
            known = await layer.latest_seqs([user_group(user_id) for user_id in user_ids])
        except Exception as error:
            if not faults.report("heartbeat", error):
                raise
            return await run_db(inbox_last_seqs)(user_ids)
        pairs = list(zip(user_ids, known, strict=True))
        current = {user_id: seq for user_id, seq in pairs if seq is not None}
        missing = [user_id for user_id, seq in pairs if seq is None]
    if missing:
        read = await run_db(inbox_last_seqs)(missing)
        seqs = {user_id: read.get(user_id, 0) for user_id in missing}
        current.update(seqs)
        try:
            # Raised, never lowered: a publish landing meanwhile keeps its higher seq.
            await layer.raise_latest_seqs({user_group(u): seq for u, seq in seqs.items()})
        except Exception as error:  # the next tick reads the inbox for them again
            if not faults.report("heartbeat", error):
                raise
    return current


_wheels: dict[asyncio.AbstractEventLoop, HeartbeatWheel] = {}


def wheel() -> HeartbeatWheel:
    loop = asyncio.get_running_loop()
    found = _wheels.get(loop)
    if found is None:
        for old in [known for known in _wheels if known.is_closed()]:
            del _wheels[old]
        found = _wheels[loop] = HeartbeatWheel(loop)
    return found
