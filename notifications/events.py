"""Payload shapes of the notification durable events (SPEC §5)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from notifications.models import Notification
from realtime.frames import iso
from realtime.outbox import DurableEvent

NOTIFICATION = "notification"
NOTIFICATION_READ = "notification_read"


def notification_event(notification: Notification) -> DurableEvent:
    """The `notification` frame for a stored notification, to its user's inbox."""
    return DurableEvent(
        type=NOTIFICATION,
        payload={
            "notification_id": notification.id,
            "notification_type": notification.notification_type,
            "title": notification.title,
            "message": notification.message,
            "link": notification.link,
            "created_at": iso(notification.created_at),
        },
        user_ids=[notification.user_id],
    )


def notification_read_event(
    *, user_id: int, at: datetime, notification_ids: Sequence[int] | None = None
) -> DurableEvent:
    """`notification_ids` for the listed ones, or None for `all: true` (everything up to now)."""
    payload: dict[str, Any] = (
        {"all": True} if notification_ids is None else {"notification_ids": list(notification_ids)}
    )
    payload["timestamp"] = iso(at)
    return DurableEvent(type=NOTIFICATION_READ, payload=payload, user_ids=[user_id])
