"""Frames about the session itself: keep-alive, resume, token refresh."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from realtime.auth.socket import authenticate_access_token
from realtime.frames import iso
from realtime.protocol import FrameError, require_int, require_str


def authenticated_frame(*, user_id: int, last_seq: int) -> dict[str, Any]:
    """The `authenticated` frame: on connect, and after each `authenticate`."""
    return {
        "type": "authenticated",
        "user_id": user_id,
        "last_seq": last_seq,
        "heartbeat_interval": settings.QW_HEARTBEAT_SECONDS,
        "timestamp": iso(timezone.now()),
    }


async def ping(consumer, frame: dict[str, Any]) -> None:
    await consumer.send_frame({"type": "pong", "timestamp": iso(timezone.now())})


async def resume(consumer, frame: dict[str, Any]) -> None:
    last_seq = require_int(frame, "last_seq")
    if last_seq < 0:
        raise FrameError("invalid_message", "'last_seq' must be 0 or more")
    await consumer.replay(last_seq)


async def authenticate(consumer, frame: dict[str, Any]) -> None:
    """Swap in a fresh access token of the same user; pushes back the expiry close."""
    auth = await authenticate_access_token(require_str(frame, "token"))
    if not auth.ok:
        await consumer.close_with(auth.close_code, auth.close_reason)
        return
    if auth.user_id != consumer.user_id:
        raise FrameError("forbidden", "the token belongs to another user")
    consumer.schedule_expiry(auth.expires_at)
    await consumer.send_frame(
        authenticated_frame(user_id=auth.user_id, last_seq=consumer.last_sent_seq)
    )


HANDLERS = {
    "ping": ping,
    "heartbeat": ping,
    "resume": resume,
    "authenticate": authenticate,
}
