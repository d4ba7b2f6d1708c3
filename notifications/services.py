"""Notification writes: creating (single through the model, many here), reading, announcing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from notifications.events import notification_event, notification_read_event
from notifications.models import Notification
from notifications.offline import deliveries_for_notifications
from realtime.outbox import record_events
from realtime.selectors import active_users

ANNOUNCEMENT_TYPE = "announcement"
ANNOUNCEMENT_CHUNK = 2000


def notifications_create_bulk(
    *,
    user_ids: Iterable[int],
    notification_type: str,
    title: str,
    message: str = "",
    link: str = "",
) -> int:
    """One notification per user (duplicates ignored), pushed to each; returns how many.

    A fixed number of queries however many users: one INSERT of the rows, then
    one record_events call (one inbox upsert, the event rows in batches of 1,000).
    The caller passes ids of existing users.
    """
    unique_ids = list(dict.fromkeys(user_ids))
    if not unique_ids:
        return 0
    rows = [
        Notification(
            user_id=user_id,
            notification_type=notification_type,
            title=title,
            message=message,
            link=link,
        )
        for user_id in unique_ids
    ]
    with transaction.atomic():
        # PostgreSQL (and SQLite ≥ 3.35) return the new ids, which the frames carry.
        created = Notification.objects.bulk_create(rows)
        record_events(notification_event(notification) for notification in created)
        deliveries_for_notifications(created)
    return len(created)


def notification_mark_read(*, user_id: int, notification_id: int) -> bool:
    """Mark one of the user's notifications read; False if it is not theirs (→ 404).

    Only the call that actually sets read_at tells the user's other devices:
    the conditional UPDATE lets exactly one of two concurrent calls win.
    """
    now = timezone.now()
    with transaction.atomic():
        updated = Notification.objects.filter(
            id=notification_id, user_id=user_id, read_at__isnull=True
        ).update(read_at=now)
        if updated:
            record_events(
                [
                    notification_read_event(
                        user_id=user_id, at=now, notification_ids=[notification_id]
                    )
                ]
            )
            return True
        return Notification.objects.filter(id=notification_id, user_id=user_id).exists()


def notifications_mark_all_read(*, user_id: int) -> int:
    """Mark every unread notification of the user read; returns how many.

    The `all: true` event is recorded (taking the user's inbox lock) BEFORE the
    UPDATE. A notification committed before we hold the lock is then visible to
    the UPDATE and marked read; one committed after gets a later seq than our
    event. Either way no client clears a notification that stays unread.
    """
    if not Notification.objects.filter(user_id=user_id, read_at__isnull=True).exists():
        return 0
    now = timezone.now()
    with transaction.atomic():
        record_events([notification_read_event(user_id=user_id, at=now)])
        updated = Notification.objects.filter(user_id=user_id, read_at__isnull=True).update(
            read_at=now
        )
        if not updated:  # a concurrent call read them all first: say nothing
            transaction.set_rollback(True)
    return updated


def announcement_send(
    *,
    title: str,
    message: str = "",
    link: str = "",
    user_ids: Sequence[int] | None = None,
) -> int:
    """An `announcement` notification to the given users (None: every active user).

    Users are read by id in chunks and each chunk is its own transaction, so
    10,000 users take a few dozen queries and no user's inbox row stays locked
    for the whole send.
    """
    users = active_users() if user_ids is None else get_user_model().objects.filter(id__in=user_ids)
    sent = 0
    last_id = 0
    while True:
        chunk = list(
            users.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", flat=True)[:ANNOUNCEMENT_CHUNK]
        )
        if not chunk:
            return sent
        sent += notifications_create_bulk(
            user_ids=chunk,
            notification_type=ANNOUNCEMENT_TYPE,
            title=title,
            message=message,
            link=link,
        )
        last_id = chunk[-1]
