"""Where presence lives: Redis across processes, or process memory for the demo.

Both stores follow the same rules (presence/tests/test_presence_stores.py):
whether an add or a removal is a transition (first socket of a user, last one
gone) is decided atomically where the state lives — one Lua call in Redis, a
lock in memory — so two tabs racing on two processes still give exactly one
of each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from django.conf import settings

from realtime.redis_client import (
    ScriptCall,
    async_redis,
    async_script,
    presence_announced_key,
    presence_sockets_key,
    sync_script,
)

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

# The same for a heartbeat's batch in one call. KEYS: the announced index, then
# each socket's user set. ARGV: ttl, then (socket, user id) per set. Returns the
# 0/1 of _TOUCH per socket.
_TOUCH_MANY = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
local out = {}
for i = 2, #KEYS do
  local key, socket, user = KEYS[i], ARGV[2 * i - 2], ARGV[2 * i - 1]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, now + ttl, socket)
  local latest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2]
  redis.call('PEXPIREAT', key, math.ceil(tonumber(latest) * 1000))
  local announced = redis.call('ZSCORE', KEYS[1], user)
  redis.call('ZADD', KEYS[1], latest, user)
  if announced then out[i - 1] = 0 else out[i - 1] = 1 end
end
return out
"""
)
# A heartbeat tick's sockets per script call (Redis runs a script alone: keep each short).
TOUCH_MANY_CHUNK = 500

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


class Store(Protocol):
    async def touch(self, *, user_id: int, socket: str, ttl: float) -> bool: ...
    async def touch_many(self, *, entries: list[tuple[int, str]], ttl: float) -> list[bool]: ...
    async def leave(self, *, user_id: int, socket: str) -> bool: ...
    async def due(self, *, limit: int) -> list[int]: ...
    async def is_announced(self, *, user_id: int) -> bool: ...
    def live_among(self, user_ids: Sequence[int]) -> set[int]: ...
    async def alive_among(self, user_ids: Sequence[int]) -> set[int]: ...


class RedisStore:
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
        """A heartbeat's batch: one EVALSHA per TOUCH_MANY_CHUNK sockets (one for a tick, mostly).

        Not a pipeline: redis-py sends a SCRIPT EXISTS round trip before every
        pipeline that holds a script.
        """
        script = async_script(_TOUCH_MANY)
        flags: list[bool] = []
        for start in range(0, len(entries), TOUCH_MANY_CHUNK):
            chunk = entries[start : start + TOUCH_MANY_CHUNK]
            keys = [self._index()] + [presence_sockets_key(user_id) for user_id, _ in chunk]
            args: list[str | int | float] = [ttl]
            for user_id, socket in chunk:
                args += [socket, user_id]
            flags += [bool(flag) for flag in await script(keys=keys, args=args)]
        return flags

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

    async def alive_among(self, user_ids: Sequence[int]) -> set[int]:
        """`live_among` from the event loop: one EVALSHA."""
        if not user_ids:
            return set()
        call = self.alive_among_call(user_ids)
        return self.alive_from(user_ids, await async_script(call.source)(keys=call.keys))

    def alive_among_call(self, user_ids: Sequence[int]) -> ScriptCall:
        """`alive_among` as a script call to run with others in one round trip."""
        return ScriptCall(_COUNT_LIVE, [self._keys(user_id)[0] for user_id in user_ids], [])

    @staticmethod
    def alive_from(user_ids: Sequence[int], counts: Sequence[Any]) -> set[int]:
        return {user_id for user_id, count in zip(user_ids, counts, strict=True) if int(count)}


class MemoryStore:
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

    async def alive_among(self, user_ids: Sequence[int]) -> set[int]:
        return self.live_among(user_ids)


_REDIS = RedisStore()
_MEMORY = MemoryStore()


def current_store() -> Store:
    return _REDIS if settings.REDIS_URL else _MEMORY


def redis_store() -> RedisStore:
    """The Redis store itself, for a caller that bundles its script calls (REDIS_URL set)."""
    return _REDIS
