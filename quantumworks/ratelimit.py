"""Rolling-window rate limits shared by every server process (SPEC §6).

With REDIS_URL set the window lives in Redis (a sorted set per user, updated
by one Lua call: check, then add only if under the limit, so a refused frame
does not count). Without it, process memory (the single-process demo).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict, deque

from django.conf import settings

from quantumworks.redis_client import async_script

_SLIDING_WINDOW = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(oldest[2]) + window - now)}
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('PEXPIRE', key, math.ceil(window * 1000))
return {1, '0'}
"""

_memory: dict[str, deque] = defaultdict(deque)


async def hit(key: str, *, limit: int, window_seconds: float) -> float | None:
    """Count one hit; None if allowed, else the seconds until one is allowed again."""
    now = time.time()
    if settings.REDIS_URL:
        allowed, retry_after = await async_script(_SLIDING_WINDOW)(
            keys=[f"{settings.QW_CHANNEL_PREFIX}:rate:{key}"],
            args=[now, window_seconds, limit, f"{now}:{uuid.uuid4().hex[:8]}"],
        )
        return None if int(allowed) else round(max(float(retry_after), 0.001), 3)
    hits = _memory[key]
    while hits and hits[0] <= now - window_seconds:
        hits.popleft()
    if len(hits) >= limit:
        return round(max(hits[0] + window_seconds - now, 0.001), 3)
    hits.append(now)
    return None
