"""Redis clients for the shared counters (rate limits, presence).

An asyncio Redis connection belongs to the event loop that opened it: a client
shared across loops (the test session, `async_to_sync`) fails with "attached
to a different loop". So async code gets one client per running loop; sync
code (DRF views) gets one thread-safe client per process.
"""

from __future__ import annotations

import asyncio
import threading

import redis
import redis.asyncio
from django.conf import settings
from redis.commands.core import AsyncScript, Script

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
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_timeout=SOCKET_TIMEOUT)
        _async_clients[loop] = client
    return client


def async_script(source: str) -> AsyncScript:
    """A Lua script bound to this loop's client (EVALSHA, loaded on first use)."""
    client = async_redis()
    key = (asyncio.get_running_loop(), source)
    script = _async_scripts.get(key)
    if script is None:
        script = _async_scripts[key] = client.register_script(source)
    return script


def sync_redis() -> redis.Redis:
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=SOCKET_TIMEOUT)
        return _sync_client


def sync_script(source: str) -> Script:
    client = sync_redis()
    with _sync_lock:
        script = _sync_scripts.get(source)
        if script is None:
            script = _sync_scripts[source] = client.register_script(source)
        return script
