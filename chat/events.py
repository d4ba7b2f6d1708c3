"""Payload shapes of chat's durable events (SPEC §5)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from realtime.frames import iso

CHAT_MESSAGE = "chat_message"
MESSAGE_STATUS = "message_status"
MESSAGE_DELETED = "message_deleted"
MESSAGE_UPDATED = "message_updated"
CONVERSATION_READ = "conversation_read"
DURABLE_EVENT_TYPES = (
    CHAT_MESSAGE,
    MESSAGE_STATUS,
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    CONVERSATION_READ,
)


def room_group(room_id: int) -> str:
    return f"room.{room_id}"


def chat_message_payload(
    *,
    message_id: int,
    sender_id: int,
    receiver_id: int | None,
    room_id: int | None,
    content: str,
    client_msg_id: str | None,
    created_at: datetime,
    attachments: Sequence[dict[str, Any]] = (),
    mentions: Sequence[int] = (),
) -> dict[str, Any]:
    payload: dict[str, Any] = {"message_id": message_id, "sender_id": sender_id}
    if receiver_id is not None:
        payload["receiver_id"] = receiver_id
    else:
        payload["room_id"] = room_id
    payload.update(
        {
            "content": content,
            "timestamp": iso(created_at),
            "client_msg_id": client_msg_id,
            "attachments": list(attachments),
            "mentions": list(mentions),
        }
    )
    return payload


def chat_message_recipients(
    *, sender_id: int, receiver_id: int | None, room_members: Iterable[int]
) -> list[int]:
    """The receiver (or every room member) and the sender, for their other tabs."""
    if receiver_id is not None:
        return sorted({sender_id, receiver_id})
    return sorted({sender_id, *room_members})


def message_status_payload(
    *, message_id: int, status: str, by: int, at: datetime
) -> dict[str, Any]:
    return {"message_id": message_id, "status": status, "by": by, "timestamp": iso(at)}


def message_updated_payload(
    *, message_id: int, content: str, edited_at: datetime, mentions: Sequence[int]
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "content": content,
        "edited_at": iso(edited_at),
        "mentions": list(mentions),
    }


def message_deleted_payload(*, message_id: int) -> dict[str, Any]:
    return {"message_id": message_id}


def conversation_read_payload(
    *, counterpart_id: int | None, room_id: int | None, last_read_message_id: int
) -> dict[str, Any]:
    """Sent to the reader's own devices: the badge of that conversation is cleared up to here."""
    where = {"with": counterpart_id} if counterpart_id is not None else {"room": room_id}
    return {**where, "last_read_message_id": last_read_message_id}
