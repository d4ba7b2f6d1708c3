"""Shapes of the `task_status_update` event: payload, recipients, groups, notification text."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from realtime.frames import iso
from tasks.models import TaskStatus

TASK_STATUS_UPDATE = "task_status_update"
TASK_STATUS_NOTIFICATION_TYPE = "task_status"

# How a status reads after "is now …".
_STATUS_WORDING = {
    TaskStatus.OPEN: "open",
    TaskStatus.IN_PROGRESS: "in progress",
    TaskStatus.REVIEW: "in review",
    TaskStatus.DONE: "done",
    TaskStatus.CANCELLED: "cancelled",
}


def task_group(task_id: int) -> str:
    return f"task.{task_id}"


def project_group(project_id: int) -> str:
    return f"project.{project_id}"


def task_status_payload(
    *,
    task_id: int,
    project_id: int,
    status: str,
    previous_status: str,
    updated_by: int | None,
    at: datetime,
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "project_id": project_id,
        "status": status,
        "previous_status": previous_status,
        "updated_by": updated_by,
        "timestamp": iso(at),
    }


def task_status_recipients(
    *,
    freelancer_id: int | None,
    author_id: int,
    watcher_ids: Iterable[int],
    actor_id: int | None,
) -> list[int]:
    """Everyone on the task, and the actor too (for their other tabs)."""
    users = {author_id, *watcher_ids}
    if freelancer_id is not None:
        users.add(freelancer_id)
    if actor_id is not None:
        users.add(actor_id)
    return sorted(users)


def task_status_groups(*, task_id: int, project_id: int) -> list[str]:
    """Where the ephemeral copy goes: the `task:` and `project:` subscribers."""
    return [task_group(task_id), project_group(project_id)]


def task_status_notification_title(*, task_title: str, status: str) -> str:
    return f"Your task “{task_title}” is now {_STATUS_WORDING[TaskStatus(status)]}"


def task_status_notification_message(
    *, actor_name: str | None, previous_status: str, status: str
) -> str:
    change = (
        f"from {_STATUS_WORDING[TaskStatus(previous_status)]} "
        f"to {_STATUS_WORDING[TaskStatus(status)]}"
    )
    return f"{actor_name} moved it {change}." if actor_name else f"Moved {change}."


def task_link(task_id: int) -> str:
    return f"/tasks/{task_id}"
