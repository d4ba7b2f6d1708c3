"""Reads of the durable inbox, and the one active-user lookup."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from realtime import registry
from realtime.models import Event, UserInbox

if TYPE_CHECKING:  # the project's user model (AUTH_USER_MODEL is Django's default)
    from django.contrib.auth.models import User


def inbox_last_seq(user_id: int) -> int:
    return UserInbox.objects.filter(user_id=user_id).values_list("last_seq", flat=True).first() or 0


def inbox_last_seqs(user_ids: list[int]) -> dict[int, int]:
    """Each user's current seq (users without an inbox row are absent: seq 0), one statement.

    Raw SQL: every heartbeat tick of every process runs it, and the ORM
    compiled it anew each time (an IN list of a tick's users).
    """
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT user_id, last_seq FROM {UserInbox._meta.db_table} "
            f"WHERE user_id IN ({', '.join(['%s'] * len(ids))})",
            ids,
        )
        return dict(cursor.fetchall())


def events_after(
    user_id: int, after_seq: int, *, limit: int, upto_seq: int | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """At most `limit` events with seq > after_seq (and ≤ upto_seq), oldest first.

    Served by the (user, seq) unique index: one range scan per batch. The
    apps' rewriters see the rows before anyone else (realtime.registry).
    """
    queryset = Event.objects.filter(user_id=user_id, seq__gt=after_seq)
    if upto_seq is not None:
        queryset = queryset.filter(seq__lte=upto_seq)
    rows = list(queryset.order_by("seq").values_list("seq", "type", "payload")[:limit])
    return registry.rewrite_events(rows)


def retention_cutoff() -> datetime:
    return timezone.now() - timedelta(days=settings.QW_EVENT_RETENTION_DAYS)


def active_users() -> QuerySet[User]:
    """Users who may sign in and be addressed; inactive ones are invisible to every app."""
    return get_user_model().objects.filter(is_active=True)


def active_user_ids(*, user_ids: Iterable[int]) -> set[int]:
    return set(active_users().filter(id__in=set(user_ids)).values_list("id", flat=True))


def user_is_active(user_id: int) -> bool:
    """False once the user is deleted or deactivated."""
    return active_users().filter(pk=user_id).exists()
