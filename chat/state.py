"""Per-user conversation state (chat.models.ConversationState): its writes and its rebuild.

Every function runs inside the caller's transaction, so the state commits or
rolls back with the change that moved it. Counters move by increments the
database applies to the row it holds locked (`unread_count = unread_count + n`),
never by a value read earlier, so concurrent writers compose.

Room counts and receipts follow the membership's last_read_message_id, which
is an id, not a per-message flag: a room's unread count is recomputed only
while the room row is locked against sends (FOR UPDATE conflicts with the
FOR SHARE every send holds), so no message can commit between the count and
its use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from django.db import connection
from django.db.models import Case, F, Q, QuerySet, Subquery, When

from chat.models import ChatMessage, ConversationState
from chat.selectors import direct_messages, room_messages
from realtime.bulk_sql import execute_returning

_STATE = ConversationState._meta.db_table
_MESSAGES = ChatMessage._meta.db_table
_MEMBERSHIPS = "chat_roommembership"


def room_peer(room_id: int) -> int:
    return -room_id


# --- sends ----------------------------------------------------------------------------
def _newer(column: str) -> str:
    """SQL: take excluded.<column> when the excluded message is newer than the stored one."""
    return (
        f"CASE WHEN excluded.last_message_id > COALESCE({_STATE}.last_message_id, 0) "
        f"THEN excluded.{column} ELSE {_STATE}.{column} END"
    )


_UPSERT_SET = (
    f"ON CONFLICT (user_id, peer) DO UPDATE SET "
    f"unread_count = {_STATE}.unread_count + excluded.unread_count, "
    f"last_activity_at = {_newer('last_activity_at')}, "
    f"last_message_id = {_newer('last_message_id')}"
)
_COLUMNS = (
    "(user_id, peer, counterpart_id, room_id, last_message_id, unread_count, last_activity_at)"
)


def state_record_sends(
    *,
    direct: Iterable[tuple[int, int, int]],
    room: Iterable[tuple[int, int, int]],
    room_members: Mapping[int, Sequence[int]],
    now: datetime,
) -> None:
    """Move every affected user's state for a batch of new messages: one upsert.

    `direct`: (message_id, sender_id, receiver_id); `room`: (message_id,
    sender_id, room_id), with the members read under the room's share lock.
    The batch is folded per (user, conversation) here; the statement adds the
    unread increments and keeps the newest last message. Rows are written in
    (user, peer) order, so two batches lock shared rows in the same order and
    cannot deadlock.
    """
    folded: dict[tuple[int, int], list[int]] = {}  # (user, peer) → [last id, unread]

    def add(user_id: int, peer: int, message_id: int, unread: int) -> None:
        entry = folded.setdefault((user_id, peer), [0, 0])
        entry[0] = max(entry[0], message_id)
        entry[1] += unread

    for message_id, sender_id, receiver_id in direct:
        add(sender_id, receiver_id, message_id, 0)
        add(receiver_id, sender_id, message_id, 1)
    for message_id, sender_id, room_id in room:
        for member_id in room_members.get(room_id, ()):
            add(member_id, room_peer(room_id), message_id, int(member_id != sender_id))
    if not folded:
        return
    keys = sorted(folded)
    columns: list[list[int | None]] = [
        [user_id for user_id, _ in keys],
        [peer for _, peer in keys],
        [peer if peer > 0 else None for _, peer in keys],
        [-peer if peer < 0 else None for _, peer in keys],
        [folded[key][0] for key in keys],
        [folded[key][1] for key in keys],
    ]
    execute_returning(
        f"INSERT INTO {_STATE} {_COLUMNS} "
        "SELECT u, p, c, r, m, n, %s FROM unnest("
        "%b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[], %b::bigint[], %b::int[]"
        ") AS x(u, p, c, r, m, n) ORDER BY u, p "
        f"{_UPSERT_SET}",
        columns,
        sqlite_sql=f"INSERT INTO {_STATE} {_COLUMNS} VALUES {{rows}} {_UPSERT_SET}",
        row_template="(%s, %s, %s, %s, %s, %s, %s)",
        extra_params=[connection.ops.adapt_datetimefield_value(now)],
    )


def state_direct_sends_sql(inserted: str) -> str:
    """PostgreSQL: `state_record_sends` for the 1:1 messages of the CTE `inserted`
    (columns id, sender_id, receiver_id), to run in the statement of their INSERT.

    The same fold in SQL: per (user, peer) the newest message and the unread
    increments (the receiver's side counts 1, a message to oneself too),
    written in (user, peer) order. Takes one parameter, the activity time.
    """
    return (
        f"INSERT INTO {_STATE} {_COLUMNS} "
        "SELECT u, p, p, NULL, MAX(id), SUM(n), %s FROM ("
        f"SELECT sender_id AS u, receiver_id AS p, id, 0 AS n FROM {inserted} "
        f"UNION ALL SELECT receiver_id, sender_id, id, 1 FROM {inserted}"
        ") AS sides GROUP BY u, p ORDER BY u, p "
        f"{_UPSERT_SET}"
    )


# --- reads (receipts) --------------------------------------------------------------------
def state_direct_read(*, user_id: int, counterpart_id: int, newly_read: int) -> None:
    """`newly_read` visible messages from the counterpart were just marked read."""
    if newly_read:
        ConversationState.objects.filter(user_id=user_id, peer=counterpart_id).update(
            unread_count=F("unread_count") - newly_read
        )


def _room_unread_sql(room_alias_state: str) -> str:
    return (
        f"(SELECT COUNT(*) FROM {_MESSAGES} m JOIN {_MEMBERSHIPS} rm "
        f"ON rm.room_id = m.room_id AND rm.user_id = {room_alias_state}.user_id "
        f"WHERE m.room_id = {room_alias_state}.room_id AND m.id > rm.last_read_message_id "
        f"AND NOT m.is_hidden AND m.sender_id <> rm.user_id)"
    )


def state_room_recount(*, room_id: int, user_ids: Sequence[int] | None = None) -> None:
    """Recompute members' unread counts of a room. The caller holds the room row FOR UPDATE.

    The count reads only the messages after each member's last read one
    (the (room, id) index): it costs what is unread, not the room's history.
    """
    user_filter = (
        "" if user_ids is None else " AND user_id IN (" + ", ".join(["%s"] * len(user_ids)) + ")"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_STATE} SET unread_count = {_room_unread_sql(_STATE)} "
            f"WHERE room_id = %s{user_filter}",
            [room_id, *(user_ids or ())],
        )


# --- moderation ------------------------------------------------------------------------
def _last_visible(visible_newest_first: QuerySet[ChatMessage]) -> tuple[Subquery, Subquery]:
    latest = visible_newest_first.order_by("-id")
    return Subquery(latest.values("id")[:1]), Subquery(latest.values("created_at")[:1])


def state_after_hide(messages: Sequence[tuple[int, int, int | None, int | None, bool]]) -> None:
    """Correct the state for messages just hidden: (id, sender, receiver, room, was_unread).

    The caller holds the hidden messages FOR UPDATE and, for room messages,
    the rooms FOR UPDATE. A hidden message stops counting as unread, and a
    conversation whose last message it was falls back to the previous
    visible one (an index read from the top of the conversation).
    """
    hidden_ids = [message[0] for message in messages]
    unread_drop: dict[tuple[int, int], int] = defaultdict(int)
    pairs: set[tuple[int, int]] = set()
    rooms: set[int] = set()
    for _, sender_id, receiver_id, room_id, was_unread in messages:
        if receiver_id is not None:
            pairs.update({(sender_id, receiver_id), (receiver_id, sender_id)})
            if was_unread:
                unread_drop[(receiver_id, sender_id)] += 1
        elif room_id is not None:
            rooms.add(room_id)
    # One update per row, in (user, peer) order like the writer's upsert.
    for user_id, other_id in sorted(pairs):
        last_id, last_at = _last_visible(direct_messages(user_id=user_id, other_id=other_id))
        was_last = Q(last_message_id__in=hidden_ids)
        ConversationState.objects.filter(user_id=user_id, peer=other_id).update(
            unread_count=F("unread_count") - unread_drop[(user_id, other_id)],
            last_message_id=Case(When(was_last, then=last_id), default=F("last_message_id")),
            last_activity_at=Case(When(was_last, then=last_at), default=F("last_activity_at")),
        )
    for room_id in sorted(rooms):
        last_id, last_at = _last_visible(room_messages(room_id=room_id))
        ConversationState.objects.filter(room_id=room_id, last_message_id__in=hidden_ids).update(
            last_message_id=last_id, last_activity_at=last_at
        )
        state_room_recount(room_id=room_id)


# --- rooms ------------------------------------------------------------------------------
def state_room_joined(*, room_id: int, user_ids: Sequence[int]) -> None:
    """New members' rows. The caller holds the room row FOR UPDATE."""
    if not user_ids:
        return
    last = room_messages(room_id=room_id).first()
    ConversationState.objects.bulk_create(
        [
            ConversationState(
                user_id=user_id,
                peer=room_peer(room_id),
                room_id=room_id,
                last_message_id=last.id if last else None,
                last_activity_at=last.created_at if last else None,
            )
            for user_id in user_ids
        ]
    )
    if last is not None:
        state_room_recount(room_id=room_id, user_ids=user_ids)


def state_room_left(*, room_id: int, user_id: int) -> None:
    ConversationState.objects.filter(user_id=user_id, peer=room_peer(room_id)).delete()


# --- rebuild ------------------------------------------------------------------------------
def state_rebuild() -> int:
    """Recompute every user's state from the messages and memberships; returns the rows.

    Run inside a transaction. On PostgreSQL the state table is locked
    against writers first: a send or receipt in flight either committed
    before (and its messages are counted here) or waits and applies its
    increments on top of the rebuilt rows.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"LOCK TABLE {_STATE} IN EXCLUSIVE MODE")
        cursor.execute(f"DELETE FROM {_STATE}")
        # 1:1: one row per side of every pair that ever exchanged a message
        # (hidden ones included: they still make a contact).
        cursor.execute(
            f"INSERT INTO {_STATE} {_COLUMNS} "
            "SELECT u, p, p, NULL, MAX(CASE WHEN NOT is_hidden THEN id END), SUM(unread), NULL "
            "FROM ("
            "  SELECT sender_id AS u, receiver_id AS p, id, is_hidden, "
            "    CASE WHEN sender_id = receiver_id AND read_at IS NULL AND NOT is_hidden "
            "    THEN 1 ELSE 0 END AS unread "
            f"  FROM {_MESSAGES} WHERE receiver_id IS NOT NULL "
            "  UNION ALL "
            "  SELECT receiver_id, sender_id, id, is_hidden, "
            "    CASE WHEN read_at IS NULL AND NOT is_hidden THEN 1 ELSE 0 END "
            f"  FROM {_MESSAGES} WHERE receiver_id IS NOT NULL AND receiver_id <> sender_id"
            ") AS sides GROUP BY u, p"
        )
        cursor.execute(
            f"INSERT INTO {_STATE} {_COLUMNS} "
            "SELECT rm.user_id, -rm.room_id, NULL, rm.room_id, "
            f"(SELECT MAX(m.id) FROM {_MESSAGES} m WHERE m.room_id = rm.room_id "
            "AND NOT m.is_hidden), 0, NULL "
            f"FROM {_MEMBERSHIPS} rm"
        )
        cursor.execute(
            f"UPDATE {_STATE} SET unread_count = {_room_unread_sql(_STATE)} "
            "WHERE room_id IS NOT NULL"
        )
        cursor.execute(
            f"UPDATE {_STATE} SET last_activity_at = (SELECT m.created_at FROM {_MESSAGES} m "
            f"WHERE m.id = {_STATE}.last_message_id) WHERE last_message_id IS NOT NULL"
        )
        cursor.execute(f"SELECT COUNT(*) FROM {_STATE}")
        return cursor.fetchone()[0]


def state_rows(user_ids: Iterable[int] | None = None) -> list[tuple]:
    """Every state row as a comparable tuple (tests and the rebuild's check)."""
    queryset = ConversationState.objects.all()
    if user_ids is not None:
        queryset = queryset.filter(user_id__in=list(user_ids))
    return sorted(
        queryset.values_list(
            "user_id",
            "peer",
            "counterpart_id",
            "room_id",
            "last_message_id",
            "last_activity_at",
            "unread_count",
        )
    )
