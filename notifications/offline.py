"""What the send paths owe people who are away (SPEC §10): pending deliveries.

A pending delivery is written in the transaction of the message or
notification it is for, and only for a recipient with no open socket at that
moment. Everything else (settings, mutes, read, deleted, quiet hours) is
decided when it is about to be sent (notifications/worker.py), so the send
path reads nothing it does not already read.

Why presence is asked on the send path and not only in the worker: asking
only the worker would mean a row (an INSERT, a trigger, a worker's claim and
delete) for every message to someone who is present, the common case. One
presence call per writer batch instead, made concurrently with the batch's
rate-limit call, so it adds a Redis command but no wait; a present
receiver then costs nothing in the database, an away one the one INSERT of
its rows (chat/tests/test_costs.py pins both). The worker asks again
before a push: someone who came back meanwhile sees the message live.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from redis.exceptions import RedisError

from notifications.models import (
    Channel,
    Level,
    Notification,
    NotificationSettings,
    PendingDelivery,
)
from presence.store import current_store, redis_store
from realtime import faults
from realtime.redis_client import ScriptCall

MENTION_TYPE = "mention"  # SPEC §11: created by chat for each mentioned room member


def away_among(user_ids: Iterable[int]) -> set[int]:
    """Those of the users with no live socket on any server process (one Redis call)."""
    ids = sorted(set(user_ids))
    return set(ids) - current_store().live_among(ids) if ids else set()


def away_among_or_nobody(user_ids: Iterable[int], *, operation: str) -> set[int]:
    """`away_among` for a send path: with Redis unreachable nobody is away (no push
    or email rather than one to every open tab), and the fault log counts it."""
    try:
        return away_among(user_ids)
    except (RedisError, OSError) as error:
        if not faults.report(operation, error):
            raise
        return set()


async def away_among_async(user_ids: Iterable[int]) -> set[int]:
    ids = sorted(set(user_ids))
    return set(ids) - await current_store().alive_among(ids) if ids else set()


def away_among_script(
    user_ids: Iterable[int],
) -> tuple[ScriptCall, Callable[[Sequence[Any]], set[int]]]:
    """`away_among_async` on Redis presence as a script call to run with others
    (realtime.redis_client.scripts_together), and the reading of its answer."""
    store = redis_store()
    ids = sorted(set(user_ids))
    return store.alive_among_call(ids), lambda counts: set(ids) - store.alive_from(ids, counts)


def _rows(
    *, user_id: int, now: datetime, channels: Iterable[str], **subject: int
) -> list[PendingDelivery]:
    email_due = now + timedelta(seconds=settings.QW_EMAIL_DELAY_SECONDS)
    return [
        PendingDelivery(
            user_id=user_id,
            channel=channel,
            created_at=now,
            # Push at once; email after the batching delay (the worker sends a
            # user's whole batch when its first row is due).
            due_at=now if channel == Channel.PUSH else email_due,
            **subject,
        )
        for channel in channels
    ]


def deliveries_for_direct_messages(
    messages: Sequence[tuple[int, int]], *, away: set[int], now: datetime
) -> int:
    """(message id, receiver id) of new 1:1 messages; rows for the away receivers, one INSERT.

    Room messages get none: a mention reaches people as a `mention`
    notification (notifications_for_offline), the room message itself never.
    """
    rows = [
        row
        for message_id, receiver_id in messages
        if receiver_id in away
        for row in _rows(
            user_id=receiver_id, now=now, channels=Channel.values, message_id=message_id
        )
    ]
    if rows:
        PendingDelivery.objects.bulk_create(rows)
    return len(rows)


def deliveries_for_notifications(notifications: Sequence[Notification]) -> int:
    """Rows for new notifications whose users are away and may want them.

    Notifiability first (Zulip's order): a `mention` may reach anyone whose
    settings are not off (decided at send time); any other type only users
    with a channel at `all`, found with one query before presence is asked.
    """
    if not notifications:
        return 0
    mentions = {n.user_id for n in notifications if n.notification_type == MENTION_TYPE}
    others = {n.user_id for n in notifications if n.notification_type != MENTION_TYPE}
    # user → the channels at `all` (what a notification other than a mention may use)
    at_all: dict[int, tuple[str, ...]] = {}
    if others:
        for user_id, email, push in NotificationSettings.objects.filter(
            user_id__in=others
        ).values_list("user_id", "email", "push"):
            wanted = tuple(
                channel
                for channel, level in ((Channel.EMAIL, email), (Channel.PUSH, push))
                if level == Level.ALL
            )
            if wanted:
                at_all[user_id] = wanted
    if not mentions and not at_all:
        return 0
    away = away_among_or_nobody(mentions | at_all.keys(), operation="notification presence")
    now = timezone.now()
    rows = []
    for notification in notifications:
        if notification.user_id not in away:
            continue
        if notification.notification_type == MENTION_TYPE:
            channels: Sequence[str] = Channel.values
        else:
            channels = at_all.get(notification.user_id, ())
        rows += _rows(
            user_id=notification.user_id,
            now=now,
            channels=channels,
            notification_id=notification.id,
        )
    if rows:
        PendingDelivery.objects.bulk_create(rows)
    return len(rows)
