"""Every created Notification reaches its user, however it was created.

`Notification.objects.create(...)` from code, the admin or a shell records the
durable `notification` event through this post_save handler. bulk_create sends
no post_save: `services.notifications_create_bulk` records its events itself.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from notifications.events import notification_event
from notifications.models import Notification
from notifications.offline import deliveries_for_notifications
from realtime.outbox import record_events


@receiver(post_save, sender=Notification, dispatch_uid="notification_record_event")
def notification_record_event(
    sender: type[Notification], instance: Notification, created: bool, raw: bool, **kwargs: Any
) -> None:
    if not created or raw:  # raw: loaddata replays stored rows, not new notifications
        return
    # Inside the caller's transaction this joins it (no savepoint), so a rollback
    # removes the notification and its event together. Outside one (autocommit)
    # the row is already committed and the event gets a transaction of its own.
    with transaction.atomic(savepoint=False):
        record_events([notification_event(instance)])
        deliveries_for_notifications([instance])
