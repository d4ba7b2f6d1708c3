"""Chat frames on the socket: parse, authorize, call a service, answer."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from chat.attachments import MAX_ATTACHMENTS_PER_MESSAGE
from chat.frames import one_target, optional_attachment_ids, optional_client_msg_id
from chat.selectors import room_member_ids
from chat.services import (
    SendRequest,
    clean_content,
    message_mark_delivered,
    message_mark_read,
)
from chat.writer import writer
from realtime.db import run_db
from realtime.domain_errors import DomainError, NotFound
from realtime.frames import iso
from realtime.outbox import send_ephemeral_rollback_unsafe, user_group
from realtime.protocol import FrameError, frame_error, require_int

ERROR_MESSAGES = {
    "rate_limited": "too many messages",
    "not_found": "no such receiver or room",
    "server_error": "the message could not be stored",
    "invalid_message": "every attachment must be your own upload that is not sent yet",
}


async def chat_message(consumer, frame: dict[str, Any]) -> None:
    client_msg_id = optional_client_msg_id(frame)
    try:
        receiver_id, room_id = one_target(frame)
        content = clean_content(frame.get("content"))
        attachment_ids = optional_attachment_ids(frame, limit=MAX_ATTACHMENTS_PER_MESSAGE)
    except FrameError as error:
        error.ref = client_msg_id
        raise
    except DomainError as error:
        raise frame_error(error, ref=client_msg_id) from None
    result = await writer.submit(
        SendRequest(
            sender_id=consumer.user_id,
            content=content,
            receiver_id=receiver_id,
            room_id=room_id,
            client_msg_id=client_msg_id,
            attachment_ids=attachment_ids,
        )
    )
    if result.error == "user_inactive":  # deleted or deactivated a moment ago
        await consumer.close_with(4003, "user_inactive")
        return
    if not result.ok:
        raise FrameError(
            result.error,
            ERROR_MESSAGES[result.error],
            ref=client_msg_id,
            retry_after=result.retry_after,
            incident_id=result.incident_id,
        )
    await consumer.send_frame(
        {
            "type": "message_sent",
            "message_id": result.message_id,
            "client_msg_id": client_msg_id,
            "timestamp": iso(result.created_at),
            "duplicate": result.duplicate,
        }
    )


async def typing(consumer, frame: dict[str, Any]) -> None:
    receiver_id, room_id = one_target(frame)
    is_typing = frame.get("is_typing", True)
    if not isinstance(is_typing, bool):
        raise FrameError("invalid_message", "'is_typing' must be a boolean")
    # 5 per second per connection: connection-local, nothing shared.
    now = time.monotonic()
    window = [t for t in getattr(consumer, "typing_times", []) if t > now - 1]
    if len(window) >= settings.QW_RATE_TYPING_PER_SEC:
        raise FrameError(
            "rate_limited",
            "too many typing frames",
            retry_after=round(window[0] + 1 - now, 3),
        )
    window.append(now)
    consumer.typing_times = window
    indicator: dict[str, Any] = {
        "type": "typing_indicator",
        "sender_id": consumer.user_id,
    }
    if receiver_id is not None:
        indicator["receiver_id"] = receiver_id
        groups = [user_group(receiver_id)]
    else:
        members = await run_db(room_member_ids)(room_id=room_id)
        if consumer.user_id not in members:
            raise FrameError("not_found", ERROR_MESSAGES["not_found"])
        indicator["room_id"] = room_id
        groups = [user_group(member) for member in members if member != consumer.user_id]
    indicator["is_typing"] = is_typing
    send_ephemeral_rollback_unsafe(groups, indicator)


async def message_received(consumer, frame: dict[str, Any]) -> None:
    message_id = require_int(frame, "message_id")
    if not await run_db(message_mark_delivered)(user_id=consumer.user_id, message_id=message_id):
        raise NotFound("no such message")


async def read_receipt(consumer, frame: dict[str, Any]) -> None:
    message_id = require_int(frame, "message_id")
    if not await run_db(message_mark_read)(user_id=consumer.user_id, message_id=message_id):
        raise NotFound("no such message")


HANDLERS = {
    "chat_message": chat_message,
    "typing": typing,
    "message_received": message_received,
    "read_receipt": read_receipt,
}
