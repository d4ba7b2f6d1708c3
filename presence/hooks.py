"""Presence (SPEC §5 `presence`): the socket hooks, the stores, the sweeper.

A user is online while at least one of their sockets, on any server process,
is alive. Each socket is an entry in its user's set with an expiry that the
socket's heartbeat pushes forward (TTL_HEARTBEATS × the heartbeat interval),
so the sockets of a server process that died stop counting by themselves.

Contacts hear transitions only: `online: true` when a user's first live
socket appears, `online: false` when the last one goes. Whether an add or a
removal is a transition is decided atomically where the state lives (one Lua
call in Redis; a lock in process memory for the single-process demo), so two
tabs racing on two processes still give exactly one of each. An "announced"
index (user → latest expiry of their sockets) records who contacts were told
is online: transitions flip it, so announcements alternate per user. Every
process with open sockets sweeps that index once per heartbeat interval for
users whose sockets all expired without closing (a killed process) and
announces them offline — the Lua call lets exactly one process win each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from chat.selectors import contact_ids
from quantumworks.db import run_db
from quantumworks.realtime import send_ephemeral_rollback_unsafe, user_group
from quantumworks.redis_client import (
    async_redis,
    async_script,
    presence_announced_key,
    presence_sockets_key,
    sync_script,
)

logger = logging.getLogger(__name__)

# A socket counts for this many heartbeat intervals after its last beat: one
# late or lost beat does not flap the user offline.
TTL_HEARTBEATS = 2.5
SWEEP_BATCH = 200
# Closes after which the client reconnects at once (4002 token_expired: refresh
# and reconnect; 4012 service_restart: another node). The socket's entry is
# left to expire instead of removed: it bridges the gap until the new socket's
# entry appears, so contacts see no offline/online flap on every deploy or
# token expiry. A client that does not come back goes offline at the expiry.
RECONNECT_CLOSE_CODES = frozenset({4002, 4012})


CONTACTS_READ = "presence.contacts"


def _ttl_seconds() -> float:
    return TTL_HEARTBEATS * float(settings.QW_HEARTBEAT_SECONDS)


# --- Redis: every decision in one Lua call, on Redis's clock -------------------
# Using Redis's TIME keeps every process on one clock: a server whose clock is
# ahead cannot expire another server's sockets early.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# KEYS: the user's sockets, the announced index. ARGV: socket, ttl, user id.
# Returns 1 when the user must be announced online.
_TOUCH = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(latest) * 1000))
local announced = redis.call('ZSCORE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[2], latest, ARGV[3])
if announced then return 0 end
return 1
"""
)

# KEYS: the user's sockets, the announced index. ARGV: socket (or '' for a
# sweep), user id. Returns 1 when the user must be announced offline.
_LEAVE = (
    _NOW
    + """
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if latest then
  redis.call('ZADD', KEYS[2], 'XX', latest, ARGV[2])
  return 0
end
return redis.call('ZREM', KEYS[2], ARGV[2])
"""
)

# KEYS: the announced index. ARGV: limit. Users whose every socket may have expired.
_DUE = _NOW + "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])"

# KEYS: users' socket sets. Returns, per key, how many sockets are still alive.
_COUNT_LIVE = (
    _NOW
    + """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('ZCOUNT', key, '(' .. now, '+inf')
end
return counts
"""
)


class _Store(Protocol):
    async def touch(self, *, user_id: int, socket: str, ttl: float) -> bool: ...
    async def touch_many(self, *, entries: list[tuple[int, str]], ttl: float) -> list[bool]: ...
    async def leave(self, *, user_id: int, socket: str) -> bool: ...
    async def due(self, *, limit: int) -> list[int]: ...
    async def is_announced(self, *, user_id: int) -> bool: ...
    def live_among(self, user_ids: Sequence[int]) -> set[int]: ...


class _RedisStore:
    @staticmethod
    def _keys(user_id: int) -> list[str]:
        return [presence_sockets_key(user_id), presence_announced_key()]

    @staticmethod
    def _index() -> str:
        return presence_announced_key()

    async def touch(self, *, user_id: int, socket: str, ttl: float) -> bool:
        result = await async_script(_TOUCH)(keys=self._keys(user_id), args=[socket, ttl, user_id])
        return bool(result)

    async def touch_many(self, *, entries: list[tuple[int, str]], ttl: float) -> list[bool]:
        """A heartbeat's batch: one pipelined round trip for every socket in it."""
        script = async_script(_TOUCH)
        pipe = async_redis().pipeline(transaction=False)
        for user_id, socket in entries:
            await script(keys=self._keys(user_id), args=[socket, ttl, user_id], client=pipe)
        return [bool(result) for result in await pipe.execute()]

    async def leave(self, *, user_id: int, socket: str) -> bool:
        result = await async_script(_LEAVE)(keys=self._keys(user_id), args=[socket, user_id])
        return bool(result)

    async def due(self, *, limit: int) -> list[int]:
        due = await async_script(_DUE)(keys=[self._index()], args=[limit])
        return [int(user_id) for user_id in due]

    async def is_announced(self, *, user_id: int) -> bool:
        return await async_redis().zscore(self._index(), user_id) is not None

    def live_among(self, user_ids: Sequence[int]) -> set[int]:
        if not user_ids:
            return set()
        counts = sync_script(_COUNT_LIVE)(keys=[self._keys(user_id)[0] for user_id in user_ids])
        return {user_id for user_id, count in zip(user_ids, counts, strict=True) if int(count)}


class _MemoryStore:
    """The same rules in process memory, for the single-process demo (no REDIS_URL)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # REST views read from request threads
        self.sockets: dict[int, dict[str, float]] = {}
        self.announced: dict[int, float] = {}

    def _prune(self, user_id: int, now: float) -> float | None:
        """Drop expired sockets; the latest expiry of the rest, None if none is left."""
        alive = {s: e for s, e in self.sockets.get(user_id, {}).items() if e > now}
        if not alive:
            self.sockets.pop(user_id, None)
            return None
        self.sockets[user_id] = alive
        return max(alive.values())

    async def touch(self, *, user_id: int, socket: str, ttl: float) -> bool:
        with self.lock:
            now = time.time()
            self._prune(user_id, now)
            self.sockets.setdefault(user_id, {})[socket] = now + ttl
            was_announced = user_id in self.announced
            self.announced[user_id] = max(self.sockets[user_id].values())
            return not was_announced

    async def touch_many(self, *, entries: list[tuple[int, str]], ttl: float) -> list[bool]:
        return [await self.touch(user_id=u, socket=s, ttl=ttl) for u, s in entries]

    async def leave(self, *, user_id: int, socket: str) -> bool:
        with self.lock:
            self.sockets.get(user_id, {}).pop(socket, None)
            latest = self._prune(user_id, time.time())
            if latest is not None:
                if user_id in self.announced:
                    self.announced[user_id] = latest
                return False
            return self.announced.pop(user_id, None) is not None

    async def due(self, *, limit: int) -> list[int]:
        with self.lock:
            now = time.time()
            return [user_id for user_id, latest in self.announced.items() if latest <= now][:limit]

    async def is_announced(self, *, user_id: int) -> bool:
        with self.lock:
            return user_id in self.announced

    def live_among(self, user_ids: Sequence[int]) -> set[int]:
        with self.lock:
            now = time.time()
            return {
                user_id
                for user_id in user_ids
                if any(expiry > now for expiry in self.sockets.get(user_id, {}).values())
            }


_REDIS_STORE = _RedisStore()
_MEMORY_STORE = _MemoryStore()


def _store() -> _Store:
    return _REDIS_STORE if settings.REDIS_URL else _MEMORY_STORE


# --- announcing ------------------------------------------------------------------
async def _announce(*, user_id: int, online: bool, contacts: Iterable[int]) -> None:
    # The state may have flipped back while the contacts were read (a reload:
    # the last tab closed here, a new one opened on another process); the
    # later transition is the one that tells the truth, so this one stays quiet.
    groups = [user_group(contact) for contact in sorted(contacts)]
    if not groups or await _store().is_announced(user_id=user_id) != online:
        return
    send_ephemeral_rollback_unsafe(
        groups,
        {"type": "presence", "user_id": user_id, "online": online},
    )


async def _best_effort(work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Exception:
        # A Redis or database hiccup must not close the socket or stop its heartbeat.
        logger.exception("presence update failed")


# --- the consumer's hooks ----------------------------------------------------------
@dataclass(eq=False)
class _Connection:
    user_id: int
    socket: str  # the consumer's channel name: unique across processes
    contacts: frozenset[int] | None = None  # read at the online transition, reused after
    pending: asyncio.Future[None] | None = None
    closed: bool = False


# This process's open sockets: the sweeper runs while there is at least one.
_live: set[_Connection] = set()
_sweeper: asyncio.Task[None] | None = None


async def _run(connection: _Connection, work: Coroutine[Any, Any, None]) -> None:
    # Shielded: disconnect cancels the heartbeat task, and a refresh cut off
    # mid-command could still reach Redis after the leave and re-add the socket.
    connection.pending = asyncio.ensure_future(_best_effort(work))
    await asyncio.shield(connection.pending)


async def _touch(connection: _Connection) -> None:
    store = _store()
    if not await store.touch(
        user_id=connection.user_id, socket=connection.socket, ttl=_ttl_seconds()
    ):
        return
    await _announce_online(connection)


async def _touch_many(connections: list[_Connection]) -> None:
    store = _store()
    entries = [(connection.user_id, connection.socket) for connection in connections]
    announce = await store.touch_many(entries=entries, ttl=_ttl_seconds())
    for connection, online in zip(connections, announce, strict=True):
        if online:
            await _announce_online(connection)


async def _announce_online(connection: _Connection) -> None:
    if connection.contacts is None:
        connection.contacts = frozenset(await run_db(contact_ids)(user_id=connection.user_id))
    await _announce(user_id=connection.user_id, online=True, contacts=connection.contacts)


async def _leave(connection: _Connection) -> None:
    if not await _store().leave(user_id=connection.user_id, socket=connection.socket):
        return
    # Fresh contacts (someone may have written to the user meanwhile), plus
    # anyone who heard "online" from this socket and has since left a shared room.
    contacts = await run_db(contact_ids)(user_id=connection.user_id)
    await _announce(
        user_id=connection.user_id,
        online=False,
        contacts=contacts | (connection.contacts or frozenset()),
    )


def connect_contacts(user_id: int) -> frozenset[int]:
    """Read in the connect's DB trip (registry.connect_reads): no query at the online transition."""
    return frozenset(contact_ids(user_id=user_id))


async def connection_opened(consumer) -> None:
    contacts = getattr(consumer, "connect_reads", {}).get(CONTACTS_READ)
    connection = _Connection(
        user_id=consumer.user_id, socket=consumer.channel_name, contacts=contacts
    )
    consumer.presence_connection = connection
    _live.add(connection)
    _start_sweeper()
    await _run(connection, _touch(connection))


async def connections_alive(consumers: Iterable[Any]) -> None:
    """A heartbeat's batch of sockets: their entries are pushed forward in one round trip."""
    connections = [
        connection
        for connection in (getattr(consumer, "presence_connection", None) for consumer in consumers)
        if connection is not None and not connection.closed
    ]
    if not connections:
        return
    # Each connection's close waits for this refresh before its leave (see _run).
    pending = asyncio.ensure_future(_best_effort(_touch_many(connections)))
    for connection in connections:
        connection.pending = pending
    await asyncio.shield(pending)


async def connection_closed(consumer) -> None:
    connection: _Connection | None = getattr(consumer, "presence_connection", None)
    if connection is None or connection.closed:
        return
    connection.closed = True
    _live.discard(connection)
    if connection.pending is not None:
        await asyncio.wait([connection.pending])  # an in-flight refresh lands before the leave
    if getattr(consumer, "close_code_sent", None) not in RECONNECT_CLOSE_CODES:
        await _best_effort(_leave(connection))
    if not _live:
        _stop_sweeper()


# --- sockets that never closed (their process died) -------------------------------
async def sweep_expired() -> list[int]:
    """Announce offline every user whose sockets all expired; returns their ids."""
    store = _store()
    gone: list[int] = []
    while True:
        due = await store.due(limit=SWEEP_BATCH)
        for user_id in due:
            # The leave with no socket only prunes: one process wins each user.
            if await store.leave(user_id=user_id, socket=""):
                gone.append(user_id)
                contacts = await run_db(contact_ids)(user_id=user_id)
                await _announce(user_id=user_id, online=False, contacts=contacts)
        if len(due) < SWEEP_BATCH:
            return gone


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(float(settings.QW_HEARTBEAT_SECONDS))
        # Shielded: a sweep that won a user must announce it even if the
        # last local socket closes meanwhile and stops this task.
        await asyncio.shield(asyncio.ensure_future(_best_effort(sweep_expired())))


def _start_sweeper() -> None:
    global _sweeper
    loop = asyncio.get_running_loop()
    if _sweeper is None or _sweeper.done() or _sweeper.get_loop() is not loop:
        _sweeper = loop.create_task(_sweep_forever())


def _stop_sweeper() -> None:
    global _sweeper
    if _sweeper is not None:
        _sweeper.cancel()
        _sweeper = None


# --- reads ------------------------------------------------------------------
def online_user_ids(*, user_ids: Sequence[int]) -> set[int]:
    """Which of these users have a live socket now (expired sockets never count)."""
    return _store().live_among(list(user_ids))
