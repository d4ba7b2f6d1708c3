"""Project and task writes, and the status workflow (SPEC §3).

A status change is saved by `task_set_status`; the Task post_save receiver
(tasks/signals.py) turns it into events through `task_status_change_record`,
inside the same transaction: durable `task_status_update` rows for everyone on
the task, notifications for everyone but the actor, and an ephemeral copy for
`task:`/`project:` subscribers. All of it leaves the process only after commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction

from notifications.services import notifications_create_bulk
from realtime.domain_errors import DomainError, Forbidden, NotFound
from realtime.outbox import record_event, send_ephemeral_on_commit
from tasks import events
from tasks.models import Project, Task, TaskStatus
from tasks.selectors import task_watcher_ids

if TYPE_CHECKING:  # the project's user model (AUTH_USER_MODEL is Django's default)
    from django.contrib.auth.models import User

ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    TaskStatus.OPEN: (TaskStatus.IN_PROGRESS, TaskStatus.CANCELLED),
    TaskStatus.IN_PROGRESS: (TaskStatus.REVIEW, TaskStatus.CANCELLED),
    TaskStatus.REVIEW: (TaskStatus.DONE, TaskStatus.IN_PROGRESS, TaskStatus.CANCELLED),
    TaskStatus.DONE: (),
    TaskStatus.CANCELLED: (),
}

# The attribute through which a save tells the post_save receiver who made the
# change (the previous status comes from Task.tracker).
STATUS_CHANGE_ATTR = "_qw_status_change"


class TaskNotFound(NotFound):
    """No such task, or one the actor takes no part in (the caller answers 404 for both)."""


class TaskPermissionDenied(Forbidden):
    """The actor sees the object but may not do this to it."""


class InvalidTransition(DomainError):
    def __init__(self, *, current: str, requested: str) -> None:
        self.current = current
        self.requested = requested
        self.allowed = [str(status) for status in ALLOWED_TRANSITIONS[current]]
        super().__init__(f"a task cannot go from {current} to {requested}")


@dataclass(frozen=True)
class StatusChange:
    actor_id: int | None = None
    actor_name: str | None = None
    # Known to the caller when it has just read them under the task lock.
    watcher_ids: tuple[int, ...] | None = None


def mark_status_change(
    task: Task,
    *,
    actor: User | None,
    watcher_ids: Iterable[int] | None = None,
) -> None:
    """Name the actor of the next save's status change (service, admin); without it, None."""
    setattr(
        task,
        STATUS_CHANGE_ATTR,
        StatusChange(
            actor_id=actor.id if actor is not None else None,
            actor_name=actor.get_username() if actor is not None else None,
            watcher_ids=tuple(watcher_ids) if watcher_ids is not None else None,
        ),
    )


def project_create(*, author: User, title: str) -> Project:
    return Project.objects.create(author=author, title=title)


def task_create(
    *,
    actor: User,
    project: Project,
    title: str,
    freelancer_id: int | None = None,
    watcher_ids: Sequence[int] = (),
) -> Task:
    """Only the project's author adds tasks to it."""
    if project.author_id != actor.id:
        raise TaskPermissionDenied("only the project's author may add tasks")
    with transaction.atomic():
        task = Task.objects.create(project=project, title=title, freelancer_id=freelancer_id)
        if watcher_ids:
            task.watchers.add(*watcher_ids)
    return task


def task_set_status(*, task_id: int, status: str, actor: User) -> Task:
    """Move a task to `status` if the workflow allows it and the actor may.

    The task row is locked first, so two concurrent changes are checked one
    after the other against the status the first one left, and every
    recipient sees them in the order they committed.
    """
    status = TaskStatus(status).value  # a ValueError for a status that does not exist
    with transaction.atomic():
        task = (
            Task.objects.select_for_update(of=("self",))
            .select_related("project")
            .filter(id=task_id)
            .first()
        )
        if task is None:
            raise TaskNotFound
        watcher_ids = task_watcher_ids(task_id=task.id)
        may_change = actor.is_staff or actor.id in (task.freelancer_id, task.project.author_id)
        if not may_change:
            if actor.id in watcher_ids:
                raise TaskPermissionDenied(
                    "only the freelancer, the project's author or staff may change the status"
                )
            raise TaskNotFound
        if status not in ALLOWED_TRANSITIONS[task.status]:
            raise InvalidTransition(current=task.status, requested=status)
        mark_status_change(task, actor=actor, watcher_ids=watcher_ids)
        task.status = status
        task.save(update_fields=["status", "updated_at"])
    return task


def task_status_change_record(*, task: Task, previous_status: str, change: StatusChange) -> None:
    """Events of a saved status change; runs inside the transaction that saved it."""
    watcher_ids = (
        change.watcher_ids if change.watcher_ids is not None else task_watcher_ids(task_id=task.id)
    )
    author_id = task.project.author_id
    payload = events.task_status_payload(
        task_id=task.id,
        project_id=task.project_id,
        status=task.status,
        previous_status=previous_status,
        updated_by=change.actor_id,
        at=task.updated_at,
    )
    recipients = events.task_status_recipients(
        freelancer_id=task.freelancer_id,
        author_id=author_id,
        watcher_ids=watcher_ids,
        actor_id=change.actor_id,
    )
    record_event(type=events.TASK_STATUS_UPDATE, payload=payload, user_ids=recipients)
    send_ephemeral_on_commit(
        events.task_status_groups(task_id=task.id, project_id=task.project_id),
        {"type": events.TASK_STATUS_UPDATE, **payload},
    )
    notified = [user_id for user_id in recipients if user_id != change.actor_id]
    if notified:
        notifications_create_bulk(
            user_ids=notified,
            notification_type=events.TASK_STATUS_NOTIFICATION_TYPE,
            title=events.task_status_notification_title(task_title=task.title, status=task.status),
            message=events.task_status_notification_message(
                actor_name=change.actor_name,
                previous_status=previous_status,
                status=task.status,
            ),
            link=events.task_link(task.id),
        )
