"""Access tokens that outlive their session: a per-user "not before" watermark.

An access JWT is valid by its signature alone until it expires; logout,
deactivation and a password change must end it at once, on every process.
Each such change stores the moment it happened under one Redis key per
user; a token whose `iat` is earlier is refused wherever a token is
accepted (REST, socket connect, `authenticate` frames). The check is one
Redis GET (on a socket, one MGET for the connects of a loop iteration), no
database query. A key lives as long as an access token
does: past that every token it could refuse has expired anyway.

Like the rate limits, a Redis outage fails open: the check lets the token
through and tells the fault log (realtime.faults) (signature, expiry, user and
blacklist checks still apply); the database stays the only hard dependency.

Without REDIS_URL (the single-process demo) the watermarks live in process
memory. Tokens carry a sub-second `iat` (realtime.auth.tokens), so a
sign-in right after a logout is never refused.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework_simplejwt.settings import api_settings

from realtime import faults
from realtime.batching import LoopBatcher
from realtime.redis_client import async_redis, sync_redis, tokens_not_before_key

logger = logging.getLogger("realtime.auth.revocation")
_memory: dict[str, tuple[float, float]] = {}  # user id → (watermark, forget at)
_memory_lock = threading.Lock()


def _lifetime_seconds() -> float:
    leeway = api_settings.LEEWAY
    leeway = leeway.total_seconds() if hasattr(leeway, "total_seconds") else float(leeway)
    return api_settings.ACCESS_TOKEN_LIFETIME.total_seconds() + leeway + 60


def access_tokens_revoke(*, user_id: int) -> None:
    """Refuse every access token of this user issued before now."""
    now = time.time()
    if settings.REDIS_URL:
        try:
            sync_redis().set(
                tokens_not_before_key(user_id), repr(now), px=int(_lifetime_seconds() * 1000)
            )
        except RedisError as error:
            logger.error("access tokens of user %s not revoked: Redis: %s", user_id, error)
        return
    with _memory_lock:
        for stale in [key for key, (_, forget_at) in _memory.items() if forget_at < now]:
            del _memory[stale]
        _memory[str(user_id)] = (now, now + _lifetime_seconds())


def _revoked(watermark: bytes | str | float | None, issued_at: object) -> bool:
    if watermark is None:
        return False
    if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
        return True  # no usable iat: cannot prove it was issued after the watermark
    return issued_at < float(watermark)


def _memory_watermark(user_id: object) -> float | None:
    with _memory_lock:
        entry = _memory.get(str(user_id))
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]


def access_token_revoked(*, user_id: object, issued_at: object) -> bool:
    if settings.REDIS_URL:
        try:
            return _revoked(sync_redis().get(tokens_not_before_key(user_id)), issued_at)
        except RedisError as error:
            if not faults.report("token revocation check", error):
                logger.warning("token revocation not checked: Redis: %s", error)
            return False
    return _revoked(_memory_watermark(user_id), issued_at)


async def _watermarks(keys: list[str]) -> list[bytes | None]:
    return await async_redis().mget(keys)


# The connects of one loop iteration (a burst) share one MGET.
_watermark_reads: LoopBatcher[str, bytes | None] = LoopBatcher(_watermarks)


async def access_token_revoked_async(*, user_id: object, issued_at: object) -> bool:
    if settings.REDIS_URL:
        try:
            return _revoked(
                await _watermark_reads.submit(tokens_not_before_key(user_id)), issued_at
            )
        except RedisError as error:
            if not faults.report("token revocation check", error):
                logger.warning("token revocation not checked: Redis: %s", error)
            return False
    return _revoked(_memory_watermark(user_id), issued_at)
