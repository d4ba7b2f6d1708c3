"""The one door through which events leave the application.

Durable events (SPEC §4) are written to the per-user inbox inside the caller's
transaction and published to the channel layer only after that transaction
commits. Ephemeral frames that store nothing (typing, presence) go out at once
through `send_ephemeral_rollback_unsafe`, named for the danger of using it for
anything that writes.

Nothing else in the code base talks to the channel layer for sending.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from realtime import registry
from realtime.bulk_sql import fetch, fetch_rows_sqlite
from realtime.frames import dumps, event_frame_text
from realtime.models import Event, UserInbox
from realtime.publisher import publisher


# --- group names (channel-layer names cannot contain ":"); an app's own groups
# are named in its events.py -----------------------------------------------------
def user_group(user_id: int) -> str:
    return f"user.{user_id}"


BROADCAST_GROUP = "broadcast"


# --- durable events -----------------------------------------------------------
_INBOX = UserInbox._meta.db_table
_EVENT = Event._meta.db_table


@dataclass(frozen=True)
class DurableEvent:
    """One event for a set of users; each user gets their own seq."""

    type: str
    payload: dict[str, Any]
    user_ids: Sequence[int]


@dataclass(frozen=True)
class RecordedEvent:
    user_id: int
    seq: int
    type: str
    text: str  # the serialized frame, seq included


_SEQ_UPSERT = (
    f"INSERT INTO {_INBOX} (user_id, last_seq) "
    "SELECT * FROM unnest(%b::bigint[], %b::bigint[]) "
    f"ON CONFLICT (user_id) DO UPDATE SET last_seq = {_INBOX}.last_seq + excluded.last_seq "
    "RETURNING user_id, last_seq"
)
# PostgreSQL: the seq upsert and the event insert in one statement (one round
# trip less on every durable write, issue 18). `back` is how many of the same
# user's events follow the row in this call, so a block of n events gets
# last_seq - n + 1 … last_seq in call order.
_RECORD_POSTGRES = (
    f"WITH blocks AS ({_SEQ_UPSERT}) "
    f"INSERT INTO {_EVENT} (user_id, seq, type, payload, created_at) "
    "SELECT x.u, blocks.last_seq - x.back, x.t, x.p::jsonb, %s "
    "FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::text[]) AS x(u, back, t, p) "
    "JOIN blocks ON blocks.user_id = x.u "
    "RETURNING user_id, seq"
)


def _allocate_seqs(counts: dict[int, int]) -> dict[int, int]:
    """SQLite: reserve `counts[user]` consecutive seqs per user; return the first of each block."""
    user_ids = sorted(counts)
    rows = fetch_rows_sqlite(
        f"INSERT INTO {_INBOX} (user_id, last_seq) VALUES {{rows}} "
        f"ON CONFLICT (user_id) DO UPDATE SET last_seq = {_INBOX}.last_seq + excluded.last_seq "
        "RETURNING user_id, last_seq",
        [user_ids, [counts[user_id] for user_id in user_ids]],
        row_template="(%s, %s)",
    )
    return {user_id: last_seq - counts[user_id] + 1 for user_id, last_seq in rows}


_Row = tuple[int, str, DurableEvent, str]  # user, type, event, payload text


def _record_postgres(counts: dict[int, int], rows: list[_Row], db_now: Any) -> dict[int, int]:
    """Reserve the seqs and insert the events in one statement; the first seq of each user."""
    user_ids = sorted(counts)
    remaining = dict(counts)
    backs = []
    for user_id, *_ in rows:
        remaining[user_id] -= 1
        backs.append(remaining[user_id])
    last_seq: dict[int, int] = {}
    for user_id, seq in fetch(
        _RECORD_POSTGRES,
        [
            user_ids,
            [counts[user_id] for user_id in user_ids],
            db_now,
            [row[0] for row in rows],
            backs,
            [row[1] for row in rows],
            [row[3] for row in rows],
        ],
    ):
        last_seq[user_id] = max(seq, last_seq.get(user_id, seq))
    return {user_id: last_seq[user_id] - counts[user_id] + 1 for user_id in counts}


def _frames(rows: list[_Row], next_seq: dict[int, int]) -> list[RecordedEvent]:
    recorded = []
    for user_id, event_type, event, _ in rows:
        seq = next_seq[user_id]
        next_seq[user_id] = seq + 1
        recorded.append(
            RecordedEvent(
                user_id, seq, event_type, event_frame_text(seq, event_type, event.payload)
            )
        )
    return recorded


def record_events(events: Iterable[DurableEvent]) -> list[RecordedEvent]:
    """Write durable events to their users' inboxes and publish them after commit.

    Must run inside the transaction of the change that caused the events: a
    rolled-back change leaves no event and reaches no client.

    Seqs: one upsert for all users reserves each user's block of consecutive
    seqs; it creates missing inbox rows (users made by bulk_create have none)
    and takes each row's lock until commit. Rows are locked in user-id order
    so two transactions touching the same users can never deadlock. Because
    the lock is held until commit, a later seq for a user always commits after
    an earlier one: seq order is commit order.
    """
    events = [event for event in events if event.user_ids]
    if not events:
        return []
    if not connection.in_atomic_block:
        raise RuntimeError("record_events must run inside transaction.atomic()")
    counts: dict[int, int] = defaultdict(int)
    rows: list[_Row] = []
    for event in events:
        assert event.type in registry.durable_event_types, event.type
        payload_text = dumps(event.payload)
        for user_id in sorted(set(event.user_ids)):
            counts[user_id] += 1
            rows.append((user_id, event.type, event, payload_text))
    db_now = connection.ops.adapt_datetimefield_value(timezone.now())
    if connection.vendor == "postgresql":
        recorded = _frames(rows, _record_postgres(counts, rows, db_now))
    else:
        recorded = _frames(rows, _allocate_seqs(counts))
        fetch_rows_sqlite(
            f"INSERT INTO {_EVENT} (user_id, seq, type, payload, created_at) VALUES {{rows}}",
            [
                [item.user_id for item in recorded],
                [item.seq for item in recorded],
                [item.type for item in recorded],
                [row[3] for row in rows],
            ],
            row_template="(%s, %s, %s, %s, %s)",
            extra_params=[db_now],
        )
    transaction.on_commit(lambda: publish_recorded(recorded), robust=True)
    return recorded


def record_event(
    *, type: str, payload: dict[str, Any], user_ids: Sequence[int]
) -> list[RecordedEvent]:
    return record_events([DurableEvent(type=type, payload=payload, user_ids=user_ids)])


def publish_recorded(recorded: Sequence[RecordedEvent]) -> None:
    """Ring each user's doorbell: one layer message per user with all of their new events."""
    committed_at = time.time()
    by_user: dict[int, list[list[Any]]] = defaultdict(list)
    for item in recorded:
        by_user[item.user_id].append([item.seq, item.type, item.text])
    publisher.publish(
        [
            (
                user_group(user_id),
                # committed_at: for the delivery latency histogram (SPEC §9)
                {"type": "inbox.events", "events": events, "committed_at": committed_at},
            )
            for user_id, events in by_user.items()
        ]
    )


# --- ephemeral frames ---------------------------------------------------------
def send_ephemeral_on_commit(groups: Iterable[str], frame: dict[str, Any]) -> None:
    """An ephemeral copy of a change (e.g. to `task.{id}` subscribers), after commit."""
    messages = [(group, {"type": "ephemeral.frame", "text": dumps(frame)}) for group in groups]
    transaction.on_commit(lambda: publisher.publish(messages), robust=True)


def send_ephemeral_rollback_unsafe(groups: Iterable[str], frame: dict[str, Any]) -> None:
    """Send now, transaction or not. Only for frames that store nothing (typing, presence)."""
    publisher.publish(
        [(group, {"type": "ephemeral.frame", "text": dumps(frame)}) for group in groups]
    )


def send_control_on_commit(group: str, message: dict[str, Any]) -> None:
    """A control message to the consumers of a group (e.g. close sockets of a deactivated user)."""
    transaction.on_commit(lambda: publisher.publish([(group, message)]), robust=True)
