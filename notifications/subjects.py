"""What a pending delivery is about, read again when it is about to be sent (SPEC §10).

The message or notification as it is now (current content, read, hidden or
deleted), and what a push or an email shows of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from notifications.models import Notification, PendingDelivery
from notifications.offline import MENTION_TYPE

BODY_CHARS = 200
HIDDEN_BODY = "New message"


@dataclass(frozen=True)
class Item:
    row: PendingDelivery
    type: str  # chat_message | notification
    title: str
    text: str  # the current content
    link: str
    conversation: str  # the push Topic and tag
    group: str  # the email's group: a 1:1 counterpart, or notifications
    label: str  # the group's name in an email
    direct_or_mention: bool
    mute_key: tuple[int, int | None, int | None] | None
    created_at: datetime


def public_link(path: str) -> str:
    if path.startswith("/") and not path.startswith("//"):
        return f"{settings.QW_PUBLIC_URL}{path}"
    return f"{settings.QW_PUBLIC_URL}/notifications/"


def item_of(row: PendingDelivery) -> Item | None:
    """The row's message or notification as it is now; None if it no longer concerns anyone."""
    if row.message_id is not None:
        message = row.message
        assert message is not None  # loaded with the row (select_related)
        # Hidden by moderation, read on any device, or deleted by its sender
        # (SPEC §11 erases a deleted message's content and sets deleted_at).
        if (
            message.is_hidden
            or message.read_at is not None
            or getattr(message, "deleted_at", None) is not None
        ):
            return None
        sender = message.sender
        return Item(
            row=row,
            type="chat_message",
            title=sender.username,
            text=message.content,
            link=public_link(f"/chat/?with={sender.id}"),
            conversation=f"dm-{sender.id}",
            group=f"dm-{sender.id}",
            label=sender.username,
            direct_or_mention=True,
            mute_key=(row.user_id, sender.id, None),
            created_at=message.created_at,
        )
    notification = row.notification
    assert notification is not None  # exactly one subject (pending_one_subject)
    if notification.read_at is not None:
        return None
    return Item(
        row=row,
        type="notification",
        title=notification.title,
        text=notification.message or notification.title,
        link=public_link(notification.link),
        conversation=f"n-{notification.id}",
        group="notifications",
        label="Notifications",
        direct_or_mention=notification.notification_type == MENTION_TYPE,
        mute_key=_room_mute_key(row.user_id, notification),
        created_at=notification.created_at,
    )


# A mention's link names its room (chat.mentions.mention_link): a muted room mutes its mentions.
_ROOM_LINK = re.compile(r"^/chat/\?room=(\d+)(?:#|$)")


def _room_mute_key(user_id: int, notification: Notification) -> tuple[int, None, int] | None:
    match = _ROOM_LINK.match(notification.link)
    if notification.notification_type != MENTION_TYPE or match is None:
        return None
    return (user_id, None, int(match.group(1)))


def pending_rows(ids: list[int]) -> list[PendingDelivery]:
    return list(
        PendingDelivery.objects.filter(id__in=ids)
        .select_related("user", "message__sender", "notification")
        .order_by("id")
    )


def push_payload(item: Item, *, hide_content: bool) -> dict:
    """SPEC §10: type, title, body (≤ 200 characters, or "New message"), link, tag."""
    if hide_content:
        title = item.title if item.type == "chat_message" else "New notification"
        body = HIDDEN_BODY
    else:
        title = item.title
        body = item.text if len(item.text) <= BODY_CHARS else item.text[: BODY_CHARS - 1] + "…"
    return {
        "type": item.type,
        "title": title,
        "body": body,
        "link": item.link,
        "tag": item.conversation,
    }
