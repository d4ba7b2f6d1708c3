"""Redis clients and key names for the shared counters (rate limits, presence).

An asyncio Redis connection belongs to the event loop that opened it: a client
shared across loops (the test session, `async_to_sync`) fails with "attached
to a different loop". So async code gets one client per running loop; sync
code (DRF views) gets one thread-safe client per process.

The counters live on REDIS_URL, or with Sentinel on the first master
(QW_REDIS_SENTINEL_MASTERS), found again through the sentinels after a failover.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from django.conf import settings
from redis.commands.core import AsyncScript, Script

from realtime.redis_connection import TasklessConnection

SOCKET_TIMEOUT = 5

_async_clients: dict[asyncio.AbstractEventLoop, redis.asyncio.Redis] = {}
_async_scripts: dict[tuple[asyncio.AbstractEventLoop, str], AsyncScript] = {}
_sync_client: redis.Redis | None = None
_sync_scripts: dict[str, Script] = {}
_sync_lock = threading.Lock()


def async_redis() -> redis.asyncio.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        for old_loop in [known for known in _async_clients if known.is_closed()]:
            del _async_clients[old_loop]
        for key in [key for key in _async_scripts if key[0].is_closed()]:
            del _async_scripts[key]
        client = _async_clients[loop] = _new_async_client(socket_timeout=SOCKET_TIMEOUT)
    return client


def _new_async_client(**options: Any) -> redis.asyncio.Redis:
    if settings.QW_REDIS_SENTINELS:
        sentinel = redis.asyncio.sentinel.Sentinel(settings.QW_REDIS_SENTINELS, **options)
        return sentinel.master_for(settings.QW_REDIS_SENTINEL_MASTERS[0], **options)
    return redis.asyncio.Redis.from_url(
        settings.REDIS_URL, **tcp_connection(settings.REDIS_URL), **options
    )


def tcp_connection(url: str) -> dict[str, Any]:
    """The connection class without a task per command, for plain TCP URLs (TLS and
    unix sockets keep redis-py's own)."""
    return {"connection_class": TasklessConnection} if url.startswith("redis://") else {}


def new_sync_client(**options: Any) -> redis.Redis:
    """A fresh client to the counters' Redis (the caller closes it)."""
    if settings.QW_REDIS_SENTINELS:
        sentinel = redis.sentinel.Sentinel(settings.QW_REDIS_SENTINELS, **options)
        return sentinel.master_for(settings.QW_REDIS_SENTINEL_MASTERS[0], **options)
    return redis.Redis.from_url(settings.REDIS_URL, **options)


def layer_clients(**options: Any) -> list[redis.Redis]:
    """One fresh client per channel-layer shard (readiness checks; the caller closes them)."""
    if settings.QW_REDIS_SENTINELS:
        sentinel = redis.sentinel.Sentinel(settings.QW_REDIS_SENTINELS, **options)
        return [sentinel.master_for(name, **options) for name in settings.QW_REDIS_SENTINEL_MASTERS]
    return [redis.Redis.from_url(url, **options) for url in settings.QW_REDIS_LAYER_URLS]


def async_script(source: str) -> AsyncScript:
    """A Lua script bound to this loop's client (EVALSHA, loaded on first use)."""
    client = async_redis()
    key = (asyncio.get_running_loop(), source)
    script = _async_scripts.get(key)
    if script is None:
        script = _async_scripts[key] = client.register_script(source)
    return script


@dataclass(frozen=True)
class ScriptCall:
    """One Lua script's call, to run with others in one round trip (`scripts_together`)."""

    source: str
    keys: list[str]
    args: list[Any]


# Each part runs as a function whose KEYS and ARGV are its own slices: the
# first 2n ARGV entries are the parts' key and argument counts.
_BUNDLE_RUN = """
local n = #parts
local results, k, a = {}, 0, 2 * n
for i = 1, n do
  local nk, na = tonumber(ARGV[i]), tonumber(ARGV[n + i])
  local keys, args = {}, {}
  for j = 1, nk do keys[j] = KEYS[k + j] end
  for j = 1, na do args[j] = ARGV[a + j] end
  k, a = k + nk, a + na
  results[i] = parts[i](keys, args)
end
return results
"""


@functools.cache
def _bundle(sources: tuple[str, ...]) -> str:
    parts = "".join(
        f"parts[{index}] = function(KEYS, ARGV)\n{source}\nend\n"
        for index, source in enumerate(sources, start=1)
    )
    return f"local parts = {{}}\n{parts}{_BUNDLE_RUN}"


async def scripts_together(calls: list[ScriptCall]) -> list[Any]:
    """Run several scripts in one EVALSHA (one round trip, one command); their
    results in order. Issue 18: the chat writer's rate limit and presence read."""
    if len(calls) == 1:
        call = calls[0]
        return [await async_script(call.source)(keys=call.keys, args=call.args)]
    return await async_script(_bundle(tuple(call.source for call in calls)))(
        keys=[key for call in calls for key in call.keys],
        args=[
            *(len(call.keys) for call in calls),
            *(len(call.args) for call in calls),
            *(arg for call in calls for arg in call.args),
        ],
    )


def sync_redis() -> redis.Redis:
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = new_sync_client(socket_timeout=SOCKET_TIMEOUT)
        return _sync_client


def sync_script(source: str) -> Script:
    client = sync_redis()
    with _sync_lock:
        script = _sync_scripts.get(source)
        if script is None:
            script = _sync_scripts[source] = client.register_script(source)
        return script


# --- key names -------------------------------------------------------------------
# Every Redis key our code writes is named here, under QW_CHANNEL_PREFIX (the
# channel layer names its own keys and pub/sub channels under the same prefix):
# features cannot collide, and one prefix scan finds everything a test run left.
def rate_key(name: str) -> str:
    return f"{settings.QW_CHANNEL_PREFIX}:rate:{name}"


def presence_sockets_key(user_id: int) -> str:
    """A user's live sockets: socket → expiry."""
    return f"{settings.QW_CHANNEL_PREFIX}:presence:{user_id}"


def presence_announced_key() -> str:
    """Users announced online: user → latest expiry of their sockets."""
    return f"{settings.QW_CHANNEL_PREFIX}:presence:announced"


def tokens_not_before_key(user_id: object) -> str:
    """A user's revocation watermark: access tokens issued before it are refused."""
    return f"{settings.QW_CHANNEL_PREFIX}:tokens_not_before:{user_id}"
