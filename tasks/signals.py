"""Task saves that carry a status change become events, after the transaction commits.

The receiver runs inside the saving transaction and only records: the durable
rows are written there, and everything reaches the channel layer through
`quantumworks.realtime`'s on_commit hooks, so a rolled-back save tells no one.
"""

from __future__ import annotations

from django.db.models.signals import post_save
from django.dispatch import receiver

from tasks.models import Task
from tasks.services import STATUS_CHANGE_ATTR, task_status_change_record


@receiver(post_save, sender=Task, dispatch_uid="tasks.publish_status_change")
def publish_status_change(sender: type[Task], instance: Task, **kwargs: object) -> None:
    # Popped, so a later save of the same instance does not announce it twice.
    change = instance.__dict__.pop(STATUS_CHANGE_ATTR, None)
    if change is not None and change.previous_status != instance.status:
        task_status_change_record(task=instance, change=change)
