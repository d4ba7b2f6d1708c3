"""Rolling-window rate limits shared by every server process (SPEC §6).

With REDIS_URL set the window lives in Redis (a sorted set per user, updated
by one Lua call: check, then add only if under the limit, so a refused frame
does not count). Without it, process memory (the single-process demo).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings

from realtime.redis_client import ScriptCall, async_script, rate_key, sync_script

# One hit per KEYS[i] (a key may repeat), in order; returns, per hit, 0 when
# allowed or the seconds until the window has room again.
_SLIDING_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local results = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    results[i] = tostring(tonumber(oldest[2]) + window - now)
  else
    redis.call('ZADD', key, now, ARGV[3 + i])
    redis.call('PEXPIRE', key, math.ceil(window * 1000))
    results[i] = '0'
  end
end
return results
"""

_memory: dict[str, deque] = defaultdict(deque)
_memory_lock = threading.Lock()


async def hit_many(keys: list[str], *, limit: int, window_seconds: float) -> list[float | None]:
    """Count one hit per key, in order, in one Redis round trip (the chat writer's batch).

    Each result is None when allowed, else the seconds until the window has room.
    """
    if settings.REDIS_URL:
        call, read = hit_many_script(keys, limit=limit, window_seconds=window_seconds)
        return read(await async_script(call.source)(keys=call.keys, args=call.args))
    now = time.time()
    return [_memory_hit(key, now, limit, window_seconds) for key in keys]


def hit_many_script(
    keys: list[str], *, limit: int, window_seconds: float
) -> tuple[ScriptCall, Callable[[Sequence[Any]], list[float | None]]]:
    """`hit_many` on Redis as a script call to run with others
    (redis_client.scripts_together), and the reading of its answer."""
    now = time.time()
    nonce = uuid.uuid4().hex[:12]
    call = ScriptCall(
        _SLIDING_WINDOW,
        [rate_key(key) for key in keys],
        [now, window_seconds, limit, *(f"{now}:{nonce}:{i}" for i in range(len(keys)))],
    )
    return call, lambda waits: [_retry_after(float(wait)) for wait in waits]


def hit_sync(key: str, *, limit: int, window_seconds: float) -> float | None:
    """`hit` for sync callers (DRF views), without an event loop per call."""
    now = time.time()
    if settings.REDIS_URL:
        waits = sync_script(_SLIDING_WINDOW)(
            keys=[rate_key(key)],
            args=[now, window_seconds, limit, f"{now}:{uuid.uuid4().hex[:12]}:0"],
        )
        return _retry_after(float(waits[0]))
    return _memory_hit(key, now, limit, window_seconds)


def _retry_after(wait: float) -> float | None:
    return None if wait == 0 else round(max(wait, 0.001), 3)


def _memory_hit(key: str, now: float, limit: int, window_seconds: float) -> float | None:
    with _memory_lock:
        return _memory_hit_locked(key, now, limit, window_seconds)


def _memory_hit_locked(key: str, now: float, limit: int, window_seconds: float) -> float | None:
    hits = _memory[key]
    while hits and hits[0] <= now - window_seconds:
        hits.popleft()
    if len(hits) >= limit:
        return round(max(hits[0] + window_seconds - now, 0.001), 3)
    hits.append(now)
    return None
