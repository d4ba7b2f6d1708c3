"""Editing and deleting a sent message (SPEC §11), and what a replay shows of it."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import events
from chat.attachments import with_fresh_urls
from chat.mentions import mentions_replace
from chat.models import ChatMessage
from chat.selectors import room_member_ids
from chat.services import clean_content, messages_hide
from realtime.domain_errors import DomainError, NotFound
from realtime.outbox import DurableEvent, record_events
from realtime.registry import EventRows


class EditWindowClosed(DomainError):
    """The message is older than QW_EDIT_WINDOW_SECONDS (→ 409)."""


def message_edit(*, user_id: int, message_id: int, content: object) -> ChatMessage:
    """The sender replaces the text; every participant's devices get `message_updated`.

    Raises ContentInvalid (SPEC §6), NotFound (not theirs, gone, or a room
    they left) or EditWindowClosed. The same text again changes nothing.
    """
    cleaned = clean_content(content)
    now = timezone.now()
    with transaction.atomic():
        message = (
            ChatMessage.objects.select_for_update()
            .filter(id=message_id, sender_id=user_id, is_hidden=False)
            .first()
        )
        if message is None:
            raise NotFound("no such message")
        members = room_member_ids(room_id=message.room_id) if message.room_id else []
        if message.room_id is not None and user_id not in members:
            raise NotFound("no such message")
        if now - message.created_at > timedelta(seconds=settings.QW_EDIT_WINDOW_SECONDS):
            raise EditWindowClosed("the edit window of this message has closed")
        if cleaned == message.content:
            return message
        message.content = cleaned
        message.edited_at = now
        message.save(update_fields=["content", "edited_at"])
        mentions = (
            mentions_replace(
                message_id=message.id,
                sender_id=user_id,
                room_id=message.room_id,
                content=cleaned,
                member_ids=members,
            )
            if message.room_id is not None
            else []
        )
        record_events(
            [
                DurableEvent(
                    type=events.MESSAGE_UPDATED,
                    payload=events.message_updated_payload(
                        message_id=message.id, content=cleaned, edited_at=now, mentions=mentions
                    ),
                    user_ids=events.chat_message_recipients(
                        sender_id=message.sender_id,
                        receiver_id=message.receiver_id,
                        room_members=members,
                    ),
                )
            ]
        )
    return message


def message_delete(*, user_id: int, is_staff: bool, message_id: int) -> None:
    """The sender (at any time) or staff deletes a message; anyone else gets NotFound.

    The admin's delete action goes through the same messages_hide(erase=True).
    """
    with transaction.atomic():
        sender_id = (
            ChatMessage.objects.filter(id=message_id, is_hidden=False)
            .values_list("sender_id", flat=True)
            .first()
        )
        if sender_id is None or (sender_id != user_id and not is_staff):
            raise NotFound("no such message")
        messages_hide(message_ids=[message_id], erase=True)


_ABOUT_A_MESSAGE = frozenset({events.CHAT_MESSAGE, events.MESSAGE_UPDATED})


def replayed_events(rows: EventRows) -> EventRows:
    """Stored chat events as a replay may show them now (a realtime.registry rewriter).

    A deleted or hidden message's `chat_message` and `message_updated` become
    `message_deleted` tombstones at their seq, so a replay never brings its
    content back; the attachments of the others get links signed now (the
    stored ones expired minutes after the send). One query per batch, by
    primary key, and none for a batch without chat messages.
    """
    ids = {
        payload["message_id"]
        for _, event_type, payload in rows
        if event_type in _ABOUT_A_MESSAGE and "message_id" in payload
    }
    if not ids:
        return rows
    visible = set(
        ChatMessage.objects.filter(id__in=ids, is_hidden=False).values_list("id", flat=True)
    )
    gone = ids - visible
    rewritten: EventRows = []
    for seq, event_type, payload in rows:
        if event_type in _ABOUT_A_MESSAGE and payload.get("message_id") in gone:
            rewritten.append(
                (
                    seq,
                    events.MESSAGE_DELETED,
                    events.message_deleted_payload(message_id=payload["message_id"]),
                )
            )
        elif event_type == events.CHAT_MESSAGE and payload.get("attachments"):
            rewritten.append(
                (
                    seq,
                    event_type,
                    {**payload, "attachments": with_fresh_urls(payload["attachments"])},
                )
            )
        else:
            rewritten.append((seq, event_type, payload))
    return rewritten
