"""Reads of the durable inbox."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from quantumworks.models import Event, UserInbox


def inbox_last_seq(user_id: int) -> int:
    return UserInbox.objects.filter(user_id=user_id).values_list("last_seq", flat=True).first() or 0


def inbox_last_seqs(user_ids: list[int]) -> dict[int, int]:
    """Each user's current seq (users without an inbox row are absent: seq 0), one query."""
    return dict(
        UserInbox.objects.filter(user_id__in=set(user_ids)).values_list("user_id", "last_seq")
    )


def events_after(
    user_id: int, after_seq: int, *, limit: int, upto_seq: int | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """At most `limit` events with seq > after_seq (and ≤ upto_seq), oldest first.

    Served by the (user, seq) unique index: one range scan per batch.
    """
    queryset = Event.objects.filter(user_id=user_id, seq__gt=after_seq)
    if upto_seq is not None:
        queryset = queryset.filter(seq__lte=upto_seq)
    return list(queryset.order_by("seq").values_list("seq", "type", "payload")[:limit])


def retention_cutoff() -> datetime:
    return timezone.now() - timedelta(days=settings.QW_EVENT_RETENTION_DAYS)


def user_is_active(user_id: int) -> bool:
    """False once the user is deleted or deactivated."""
    return get_user_model().objects.filter(pk=user_id, is_active=True).exists()
