"""Task saves that carry a status change become events, after the transaction commits.

The receiver runs inside the saving transaction and only records: the durable
rows are written there, and everything reaches the channel layer through
`realtime.outbox`'s on_commit hooks, so a rolled-back save tells no one.
"""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from tasks.models import Task
from tasks.services import STATUS_CHANGE_ATTR, StatusChange, task_status_change_record


@receiver(post_save, sender=Task, dispatch_uid="tasks.publish_status_change")
def publish_status_change(
    sender: type[Task], instance: Task, created: bool, **kwargs: object
) -> None:
    # Popped, so a later save of the same instance names no stale actor.
    change = instance.__dict__.pop(STATUS_CHANGE_ATTR, None) or StatusChange()
    # In post_save the tracker still holds the status before this save (it
    # resets once the save returns), so a second save announces nothing.
    if created or not instance.tracker.has_changed("status"):
        return
    previous = instance.tracker.previous("status")
    task_status_change_record(task=instance, previous_status=previous, change=change)
