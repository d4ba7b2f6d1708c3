"""Notification reads."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import Notification


def notifications_for_user(*, user_id: int, unread_only: bool = False) -> QuerySet[Notification]:
    queryset = Notification.objects.filter(user_id=user_id)
    if unread_only:
        queryset = queryset.filter(read_at__isnull=True)
    return queryset


def notification_get_for_user(*, user_id: int, notification_id: int) -> Notification | None:
    return Notification.objects.filter(id=notification_id, user_id=user_id).first()


def notifications_unread_count(*, user_id: int) -> int:
    """Served by the partial index on unread rows: cheap even with a long history."""
    return Notification.objects.filter(user_id=user_id, read_at__isnull=True).count()
