"""Chat writes: sending (batched), receipts, rooms."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from chat import events
from chat.attachments import (
    StoredFile,
    attachments_attach,
    attachments_delete_of_messages,
    attachments_lock,
    claimable,
)
from chat.mentions import (
    MentionRequest,
    mention_notifications_delete,
    mentions_record,
    mentions_resolve,
)
from chat.models import ChatMessage, Room, RoomMembership
from chat.state import (
    state_after_hide,
    state_direct_read,
    state_direct_sends_sql,
    state_record_sends,
    state_room_joined,
    state_room_left,
    state_room_recount,
)
from notifications.offline import away_among_or_nobody, deliveries_for_direct_messages
from realtime.bulk_sql import execute_returning, fetch, ids_where_in
from realtime.domain_errors import ContentInvalid, ContentNotText, ContentTooLarge
from realtime.outbox import (
    DurableEvent,
    record_events,
    send_control_on_commit,
    user_group,
)
from realtime.selectors import active_user_ids

MAX_CONTENT_CHARS = 10_000
MAX_CONTENT_BYTES = 10 * 1024
CONTENT_NOT_TEXT = "'content' is not valid Unicode text"
# Removed from content: control characters but \t and \n (a character class body).
CONTROL_CHARS = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
_CONTROL_CHARS = re.compile(f"[{CONTROL_CHARS}]")


def clean_content(raw: object) -> str:
    """SPEC §6: control characters but \\n and \\t removed, trimmed, 1–10,000 chars, ≤ 10 KiB."""
    if not isinstance(raw, str):
        raise ContentInvalid("'content' must be a string")
    content = _CONTROL_CHARS.sub("", raw).strip()
    if not content:
        raise ContentInvalid("'content' is empty")
    try:
        size = len(content.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 text, nothing a database can store
        raise ContentNotText(CONTENT_NOT_TEXT) from None
    if len(content) > MAX_CONTENT_CHARS or size > MAX_CONTENT_BYTES:
        raise ContentTooLarge("'content' exceeds 10,000 characters or 10 KiB")
    return content


@dataclass(frozen=True)
class SendRequest:
    sender_id: int
    content: str  # already cleaned
    receiver_id: int | None = None
    room_id: int | None = None
    client_msg_id: str | None = None
    # Uploads of the sender not yet attached (chat.attachments), at most 10.
    attachment_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class SendResult:
    message_id: int | None = None
    created_at: datetime | None = None
    duplicate: bool = False
    error: str | None = None  # a protocol error code, or "user_inactive" (the sender is gone)
    retry_after: float | None = None  # with error "rate_limited" or "server_error"
    incident_id: str | None = None  # with error "server_error": names the logged traceback

    @property
    def ok(self) -> bool:
        return self.error is None


NOT_FOUND = SendResult(error="not_found")
# An attachment id that is not the sender's own upload waiting to be sent.
ATTACHMENTS_REFUSED = SendResult(error="invalid_message")
# Not a protocol error code: the socket of a deleted or deactivated user is closed (4003).
SENDER_INACTIVE = SendResult(error="user_inactive")
_MESSAGES = ChatMessage._meta.db_table
_USERS = get_user_model()._meta.db_table
_COLUMNS = "(sender_id, receiver_id, room_id, content, client_msg_id, created_at, is_hidden)"
# The unique index settles resends.
_ON_RESEND = "ON CONFLICT (sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL DO NOTHING"


def _room_members_locked(room_ids: set[int]) -> dict[int, list[int]]:
    """Members of each room, with the room rows share-locked until commit.

    Member removal takes the same row FOR UPDATE, so a message either commits
    before a removal (and reaches the removed member) or after it (and does not).
    """
    if not room_ids:
        return {}
    if connection.vendor == "postgresql":
        # Django has no FOR SHARE; FOR NO KEY UPDATE would serialize every
        # send to the same room.
        rows = fetch(
            f"SELECT id FROM {Room._meta.db_table} WHERE id = ANY(%s) ORDER BY id FOR SHARE",
            [sorted(room_ids)],
        )
        existing = [row[0] for row in rows]
    else:  # SQLite serializes writers: no row lock needed
        existing = sorted(ids_where_in(Room._meta.db_table, sorted(room_ids), "1 = 1"))
    members: dict[int, list[int]] = {room_id: [] for room_id in existing}
    for room_id, user_id in RoomMembership.objects.filter(room_id__in=existing).values_list(
        "room_id", "user_id"
    ):
        members[room_id].append(user_id)
    return members


def _insert_messages(rows: list[tuple], now: datetime) -> list[tuple[int, int, str | None]]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING: the unique index settles resends.

    Rows come back in input order; a resend (an existing sender +
    client_msg_id) comes back not at all.
    """
    conflict = f"{_ON_RESEND} RETURNING id, sender_id, client_msg_id"
    return execute_returning(
        f"INSERT INTO {_MESSAGES} {_COLUMNS} "
        "SELECT s, r, m, c, k, %s, false FROM unnest("
        "%b::bigint[], %b::bigint[], %b::bigint[], %b::text[], %b::text[]) AS x(s, r, m, c, k) "
        f"{conflict}",
        list(zip(*rows, strict=True)),
        sqlite_sql=f"INSERT INTO {_MESSAGES} {_COLUMNS} VALUES {{rows}} {conflict}",
        row_template="(%s, %s, %s, %s, %s, %s, 0)",
        extra_params=[connection.ops.adapt_datetimefield_value(now)],
    )


def _direct_only(requests: Sequence[SendRequest]) -> bool:
    """A batch of 1:1 messages without attachments (W2's): one statement stores it."""
    return connection.vendor == "postgresql" and all(
        r.receiver_id is not None and not r.attachment_ids for r in requests
    )


def _insert_direct_messages(
    requests: Sequence[SendRequest], now: datetime
) -> tuple[set[int], list[tuple[int, int, str | None]]]:
    """`_direct_only` batches: the active check, the INSERT and the conversation-state
    upsert in one statement (issue 18: two round trips less per batch).

    Only messages whose sender and receiver are both active are inserted,
    which is the acceptance rule messages_send_batch applies to the active
    users returned; the inserted rows come back in input order, as from
    `_insert_messages`.
    """
    db_now = connection.ops.adapt_datetimefield_value(now)
    rows = fetch(
        f"WITH active AS (SELECT id FROM {_USERS} WHERE id = ANY(%s) AND is_active), "
        f"inserted AS (INSERT INTO {_MESSAGES} {_COLUMNS} "
        "SELECT s, r, NULL, c, k, %s, false FROM unnest("
        "%b::bigint[], %b::bigint[], %b::text[], %b::text[]) WITH ORDINALITY AS x(s, r, c, k, o) "
        "WHERE s IN (SELECT id FROM active) AND r IN (SELECT id FROM active) ORDER BY o "
        f"{_ON_RESEND} RETURNING id, sender_id, receiver_id, client_msg_id), "
        f"state AS ({state_direct_sends_sql('inserted')}) "
        "SELECT true, id, sender_id, client_msg_id FROM inserted "
        "UNION ALL SELECT false, id, NULL, NULL FROM active",
        [
            sorted({r.sender_id for r in requests} | {r.receiver_id for r in requests}),
            db_now,
            [r.sender_id for r in requests],
            [r.receiver_id for r in requests],
            [r.content for r in requests],
            [r.client_msg_id for r in requests],
            db_now,
        ],
    )
    active = {user_id for is_message, user_id, _, _ in rows if not is_message}
    inserted = [(mid, sender, cmid) for is_message, mid, sender, cmid in rows if is_message]
    return active, inserted


def direct_receivers(requests: Sequence[SendRequest]) -> set[int]:
    """Receivers of the batch's 1:1 messages: whose presence decides a pending delivery."""
    return {r.receiver_id for r in requests if r.receiver_id not in (None, r.sender_id)}


def messages_send_batch(
    requests: Sequence[SendRequest], *, away: set[int] | None = None
) -> list[SendResult]:
    """Store and deliver many chat messages in one transaction.

    The per-process writer (chat.writer) groups concurrent sends into one call,
    so the cost of a transaction, the seq upsert and the event insert is shared
    by every message in the batch. Results come back in request order.
    `away`: the 1:1 receivers with no open socket (the writer asks Redis
    alongside its rate limit); None asks here.
    """
    results: list[SendResult | None] = [None] * len(requests)
    if away is None:
        away = away_among_or_nobody(direct_receivers(requests), operation="chat presence")
    now = timezone.now()
    fused = _direct_only(requests)
    with transaction.atomic():
        # Senders too, in the same query: a socket's user can be deleted or
        # deactivated a moment before its close reaches the socket.
        if fused:
            active_users, inserted = _insert_direct_messages(requests, now)
        else:
            active_users = ids_where_in(
                _USERS,
                sorted(
                    {r.receiver_id for r in requests if r.receiver_id is not None}
                    | {r.sender_id for r in requests}
                ),
                "is_active",
            )
        room_members = _room_members_locked({r.room_id for r in requests if r.room_id is not None})

        accepted: list[int] = []
        for index, request in enumerate(requests):
            if request.sender_id not in active_users:
                results[index] = SENDER_INACTIVE
                continue
            if request.receiver_id is not None:
                allowed = request.receiver_id in active_users
            else:
                allowed = request.sender_id in room_members.get(request.room_id, ())
            if allowed:
                accepted.append(index)
            else:
                results[index] = NOT_FOUND
        files = _claim_attachments(requests, accepted, results)
        accepted = [index for index in accepted if results[index] is None]
        if not accepted:
            return results  # type: ignore[return-value]

        if not fused:
            inserted = _insert_messages(
                [
                    (r.sender_id, r.receiver_id, r.room_id, r.content, r.client_msg_id)
                    for r in (requests[i] for i in accepted)
                ],
                now,
            )
        # Map returned ids back to requests: by (sender, client_msg_id) where
        # given; rows without one cannot conflict and come back in input order.
        by_key = {(sender, cmid): mid for mid, sender, cmid in inserted if cmid is not None}
        anonymous = iter(mid for mid, _sender, cmid in inserted if cmid is None)
        new_messages: list[tuple[int, SendRequest]] = []
        duplicates: list[int] = []
        claims: list[tuple[int, tuple[int, ...]]] = []
        payload_files: dict[int, list[dict]] = {}
        for index in accepted:
            request = requests[index]
            if request.client_msg_id is None:
                message_id = next(anonymous)
            else:
                message_id = by_key.pop((request.sender_id, request.client_msg_id), None)
            if message_id is None:
                duplicates.append(index)
            else:
                new_messages.append((message_id, request))
                results[index] = SendResult(message_id=message_id, created_at=now)
                if index in files:
                    claims.append((message_id, request.attachment_ids))
                    payload_files[message_id] = [stored.payload() for stored in files[index]]

        _answer_resends(requests, duplicates, results, otherwise=SendResult(error="server_error"))

        if not fused:  # the fused statement moved the state already
            state_record_sends(
                direct=[
                    (message_id, r.sender_id, r.receiver_id)
                    for message_id, r in new_messages
                    if r.receiver_id is not None
                ],
                room=[
                    (message_id, r.sender_id, r.room_id)
                    for message_id, r in new_messages
                    if r.room_id is not None
                ],
                room_members=room_members,
                now=now,
            )
        attachments_attach(claims)
        room_sends = [(mid, r) for mid, r in new_messages if r.room_id is not None]
        mentioned = dict(
            zip(
                [mid for mid, _ in room_sends],
                mentions_resolve(
                    [MentionRequest(r.sender_id, r.room_id, r.content) for _, r in room_sends],
                    room_members,
                ),
                strict=True,
            )
        )
        record_events(
            DurableEvent(
                type=events.CHAT_MESSAGE,
                payload=events.chat_message_payload(
                    message_id=message_id,
                    sender_id=request.sender_id,
                    receiver_id=request.receiver_id,
                    room_id=request.room_id,
                    content=request.content,
                    client_msg_id=request.client_msg_id,
                    created_at=now,
                    attachments=payload_files.get(message_id, ()),
                    mentions=mentioned.get(message_id, ()),
                ),
                user_ids=events.chat_message_recipients(
                    sender_id=request.sender_id,
                    receiver_id=request.receiver_id,
                    room_members=room_members.get(request.room_id, ()),
                ),
            )
            for message_id, request in new_messages
        )
        mentions_record(
            (mid, MentionRequest(r.sender_id, r.room_id, r.content), mentioned[mid])
            for mid, r in room_sends
        )
        if away:
            deliveries_for_direct_messages(
                [
                    (message_id, r.receiver_id)
                    for message_id, r in new_messages
                    if r.receiver_id is not None and r.receiver_id != r.sender_id
                ],
                away=away,
                now=now,
            )
    return results  # type: ignore[return-value]


def _claim_attachments(
    requests: Sequence[SendRequest], accepted: list[int], results: list[SendResult | None]
) -> dict[int, list[StoredFile]]:
    """Lock the uploads the accepted requests name; refuse a request naming any other id.

    A refused request that repeats a stored client_msg_id is the resend of a
    message that already took its uploads: it is answered as a duplicate.
    """
    wanted = [index for index in accepted if requests[index].attachment_ids]
    if not wanted:
        return {}
    locked = attachments_lock(
        attachment_id for index in wanted for attachment_id in requests[index].attachment_ids
    )
    files: dict[int, list[StoredFile]] = {}
    taken: set[int] = set()
    refused: list[int] = []
    for index in wanted:
        request = requests[index]
        claimed = claimable(
            locked, sender_id=request.sender_id, attachment_ids=request.attachment_ids
        )
        if claimed is None or taken & set(request.attachment_ids):
            refused.append(index)
            continue
        taken.update(request.attachment_ids)
        files[index] = claimed
    _answer_resends(requests, refused, results, otherwise=ATTACHMENTS_REFUSED)
    return files


def _answer_resends(
    requests: Sequence[SendRequest],
    indexes: list[int],
    results: list[SendResult | None],
    *,
    otherwise: SendResult,
) -> None:
    """Answer each request that repeats a stored (sender, client_msg_id) as that duplicate.

    One query for all of them (none without a client_msg_id); the others get `otherwise`.
    """
    resent = [requests[index] for index in indexes if requests[index].client_msg_id is not None]
    originals = (
        {
            (sender, cmid): (mid, created)
            for mid, sender, cmid, created in ChatMessage.objects.filter(
                sender_id__in={r.sender_id for r in resent},
                client_msg_id__in={r.client_msg_id for r in resent},
            ).values_list("id", "sender_id", "client_msg_id", "created_at")
        }
        if resent
        else {}
    )
    for index in indexes:
        request = requests[index]
        found = originals.get((request.sender_id, request.client_msg_id))
        results[index] = (
            SendResult(message_id=found[0], created_at=found[1], duplicate=True)
            if found
            else otherwise
        )


def message_send(
    *,
    sender_id: int,
    content: object,
    receiver_id: int | None = None,
    room_id: int | None = None,
    client_msg_id: str | None = None,
    attachment_ids: Sequence[int] = (),
) -> SendResult:
    """Send one message (REST, admin, shell): the same rules as the socket."""
    request = SendRequest(
        sender_id=sender_id,
        content=clean_content(content),
        receiver_id=receiver_id,
        room_id=room_id,
        client_msg_id=client_msg_id,
        attachment_ids=tuple(attachment_ids),
    )
    return messages_send_batch([request])[0]


# --- receipts -------------------------------------------------------------------
def _visible_message_for(user_id: int, message_id: int) -> ChatMessage | None:
    """A message the user received (1:1) or that was posted in a room they belong to."""
    message = (
        ChatMessage.objects.filter(id=message_id, is_hidden=False)
        .only("id", "sender_id", "receiver_id", "room_id", "delivered_at", "read_at")
        .first()
    )
    if message is None or message.sender_id == user_id:
        return None
    if message.receiver_id is not None:
        return message if message.receiver_id == user_id else None
    is_member = RoomMembership.objects.filter(room_id=message.room_id, user_id=user_id).exists()
    return message if is_member else None


def message_mark_delivered(*, user_id: int, message_id: int) -> bool:
    """`message_received`: sets delivered_at once; the sender hears `delivered`.

    Returns False when the message is not one the user received (→ not_found).
    """
    now = timezone.now()
    with transaction.atomic():
        message = _visible_message_for(user_id, message_id)
        if message is None:
            return False
        if message.receiver_id is not None:
            updated = ChatMessage.objects.filter(id=message_id, delivered_at__isnull=True).update(
                delivered_at=now
            )
            if not updated:
                return True  # already delivered: nothing new to tell
        record_events(
            [
                DurableEvent(
                    type=events.MESSAGE_STATUS,
                    payload=events.message_status_payload(
                        message_id=message_id, status="delivered", by=user_id, at=now
                    ),
                    user_ids=[message.sender_id],
                )
            ]
        )
    return True


def message_mark_read(*, user_id: int, message_id: int) -> bool:
    """`read_receipt`: the message and every earlier one of the conversation are read."""
    now = timezone.now()
    db_now = connection.ops.adapt_datetimefield_value(now)
    with transaction.atomic():
        message = _visible_message_for(user_id, message_id)
        if message is None:
            return False
        if message.receiver_id is not None:
            # One conditional UPDATE: of two concurrent receipts each row is
            # marked (and counted) by exactly one.
            newly_read = fetch(
                f"UPDATE {_MESSAGES} SET read_at = %s, delivered_at = COALESCE(delivered_at, %s) "
                "WHERE receiver_id = %s AND sender_id = %s AND id <= %s AND read_at IS NULL "
                "RETURNING id, is_hidden",
                [db_now, db_now, user_id, message.sender_id, message_id],
            )
            if not newly_read:
                return True
            state_direct_read(
                user_id=user_id,
                counterpart_id=message.sender_id,
                newly_read=sum(1 for _, hidden in newly_read if not hidden),
            )
            latest_by_sender = {message.sender_id: max(mid for mid, _ in newly_read)}
        else:
            # The room row FOR UPDATE waits for the sends in flight and holds
            # off new ones, so the recount below sees every committed message.
            Room.objects.select_for_update(no_key=True).filter(id=message.room_id).first()
            membership = RoomMembership.objects.select_for_update().get(
                room_id=message.room_id, user_id=user_id
            )
            previous = membership.last_read_message_id
            if message_id <= previous:
                return True
            membership.last_read_message_id = message_id
            membership.save(update_fields=["last_read_message_id"])
            state_room_recount(room_id=message.room_id, user_ids=[user_id])
            latest_by_sender = defaultdict(int)
            for sender_id, mid in (
                ChatMessage.objects.filter(
                    room_id=message.room_id,
                    id__gt=previous,
                    id__lte=message_id,
                    is_hidden=False,
                )
                .exclude(sender_id=user_id)
                .values_list("sender_id", "id")
            ):
                latest_by_sender[sender_id] = max(latest_by_sender[sender_id], mid)
        # The reader's other devices clear the conversation's badge (SPEC §11).
        read_event = DurableEvent(
            type=events.CONVERSATION_READ,
            payload=events.conversation_read_payload(
                counterpart_id=message.sender_id if message.receiver_id is not None else None,
                room_id=message.room_id,
                last_read_message_id=message_id,
            ),
            user_ids=[user_id],
        )
        record_events(
            [
                *(
                    DurableEvent(
                        type=events.MESSAGE_STATUS,
                        payload=events.message_status_payload(
                            message_id=latest_id, status="read", by=user_id, at=now
                        ),
                        user_ids=[sender_id],
                    )
                    for sender_id, latest_id in latest_by_sender.items()
                ),
                read_event,
            ]
        )
    return True


# --- rooms ------------------------------------------------------------------------
def room_create(*, creator_id: int, name: str, member_ids: Sequence[int] = ()) -> Room:
    with transaction.atomic():
        room = Room.objects.create(name=name, created_by_id=creator_id)
        user_ids = {creator_id, *member_ids}
        member_ids = sorted(active_user_ids(user_ids=user_ids))
        RoomMembership.objects.bulk_create(
            [RoomMembership(room=room, user_id=user_id) for user_id in member_ids]
        )
        state_room_joined(room_id=room.id, user_ids=member_ids)
    return room


def room_add_member(*, room: Room, user_id: int) -> bool:
    with transaction.atomic():
        Room.objects.select_for_update().filter(id=room.id).first()
        _, created = RoomMembership.objects.get_or_create(room=room, user_id=user_id)
        if created:
            state_room_joined(room_id=room.id, user_ids=[user_id])
    return created


def room_remove_member(*, room: Room, user_id: int) -> bool:
    """Removal locks the room row, ordering it against in-flight sends to the room."""
    with transaction.atomic():
        Room.objects.select_for_update().filter(id=room.id).first()
        deleted, _ = RoomMembership.objects.filter(room=room, user_id=user_id).delete()
        if deleted:
            state_room_left(room_id=room.id, user_id=user_id)
            # Their open sockets leave the room's group too.
            send_control_on_commit(
                user_group(user_id),
                {
                    "type": "subscription.revoke",
                    "group": events.room_group(room.id),
                    "channel": f"room:{room.id}",
                },
            )
    return bool(deleted)


def messages_hide(*, message_ids: Sequence[int], erase: bool = False) -> int:
    """Hide messages and tell every participant (durable `message_deleted`).

    Moderation hides (the content stays for the record); a delete (`erase`)
    also wipes the content and removes the files. Either way the message
    leaves history, the conversation list and every replay (chat.replay),
    and its mention notifications go with it.
    """
    now = timezone.now()
    with transaction.atomic():
        # Rooms first, FOR UPDATE and in id order as every room lock is taken:
        # their unread counts are recomputed below with no send in flight.
        room_ids = set(
            ChatMessage.objects.filter(id__in=message_ids, room__isnull=False).values_list(
                "room_id", flat=True
            )
        )
        list(Room.objects.select_for_update(no_key=True).filter(id__in=room_ids).order_by("id"))
        messages = list(
            ChatMessage.objects.select_for_update()
            .filter(id__in=message_ids, is_hidden=False)
            .order_by("id")
            .values_list("id", "sender_id", "receiver_id", "room_id", "read_at")
        )
        if not messages:
            return 0
        hidden_ids = [m[0] for m in messages]
        changes: dict[str, object] = {"is_hidden": True}
        if erase:
            changes.update(content="", deleted_at=now)
            attachments_delete_of_messages(hidden_ids)
        ChatMessage.objects.filter(id__in=hidden_ids).update(**changes)
        mention_notifications_delete(messages=[(m[0], m[3]) for m in messages if m[3] is not None])
        state_after_hide(
            [
                (message_id, sender_id, receiver_id, room_id, read_at is None)
                for message_id, sender_id, receiver_id, room_id, read_at in messages
            ]
        )
        room_members: dict[int, list[int]] = defaultdict(list)
        for room_id, user_id in RoomMembership.objects.filter(
            room_id__in={m[3] for m in messages if m[3]}
        ).values_list("room_id", "user_id"):
            room_members[room_id].append(user_id)
        record_events(
            DurableEvent(
                type=events.MESSAGE_DELETED,
                payload=events.message_deleted_payload(message_id=message_id),
                user_ids=events.chat_message_recipients(
                    sender_id=sender_id,
                    receiver_id=receiver_id,
                    room_members=room_members.get(room_id, ()),
                ),
            )
            for message_id, sender_id, receiver_id, room_id, _ in messages
        )
    return len(messages)
