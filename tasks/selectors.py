"""Task and project reads, including who may see what.

Participation is expressed with EXISTS subqueries rather than joins, so a user
who is at once author, freelancer and watcher still yields each row once and
no DISTINCT is needed.
"""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet

from tasks.models import Project, Task

TaskWatcher = Task.watchers.through


def _watches(user_id: int, task_ref: str = "pk") -> Exists:
    return Exists(TaskWatcher.objects.filter(task_id=OuterRef(task_ref), user_id=user_id))


def _task_participant(user_id: int) -> Q:
    """Its freelancer, its project's author, its watchers."""
    return Q(freelancer_id=user_id) | Q(project__author_id=user_id) | Q(_watches(user_id))


def tasks_visible_to(*, user_id: int, is_staff: bool) -> QuerySet[Task]:
    tasks = Task.objects.all()
    return tasks if is_staff else tasks.filter(_task_participant(user_id))


def projects_visible_to(*, user_id: int, is_staff: bool) -> QuerySet[Project]:
    """Projects the user takes part in: author, or freelancer or watcher of one of its tasks."""
    projects = Project.objects.all()
    if is_staff:
        return projects
    on_a_task = Task.objects.filter(project_id=OuterRef("pk")).filter(
        Q(freelancer_id=user_id) | _watches(user_id)
    )
    return projects.filter(Q(author_id=user_id) | Exists(on_a_task))


def task_list(
    *,
    user_id: int,
    is_staff: bool,
    project_id: int | None = None,
    status: str | None = None,
) -> QuerySet[Task]:
    tasks = tasks_visible_to(user_id=user_id, is_staff=is_staff)
    if project_id is not None:
        tasks = tasks.filter(project_id=project_id)
    if status is not None:
        tasks = tasks.filter(status=status)
    return tasks.prefetch_related("watchers")


def task_get(*, user_id: int, is_staff: bool, task_id: int) -> Task | None:
    """The task if the user may see it; None for a missing task and for someone else's alike."""
    return (
        tasks_visible_to(user_id=user_id, is_staff=is_staff)
        .filter(id=task_id)
        .prefetch_related("watchers")
        .first()
    )


def project_get(*, user_id: int, is_staff: bool, project_id: int) -> Project | None:
    return projects_visible_to(user_id=user_id, is_staff=is_staff).filter(id=project_id).first()


def task_watcher_ids(*, task_id: int) -> list[int]:
    return list(TaskWatcher.objects.filter(task_id=task_id).values_list("user_id", flat=True))


# --- `subscribe` (realtime/session/subscriptions.py, SPEC §5 Groups) ----------------
def user_can_view_task(*, user_id: int, is_staff: bool, task_id: int) -> bool:
    """Its freelancer, its project's author, its watchers, staff."""
    return tasks_visible_to(user_id=user_id, is_staff=is_staff).filter(id=task_id).exists()


def user_can_view_project(*, user_id: int, is_staff: bool, project_id: int) -> bool:
    """Its author, freelancers of its tasks, staff.

    Narrower than `projects_visible_to`: a task's watcher sees the project over
    REST but hears only the tasks they watch, not every task of the project.
    """
    projects = Project.objects.filter(id=project_id)
    if is_staff:
        return projects.exists()
    freelances_on = Task.objects.filter(project_id=OuterRef("pk"), freelancer_id=user_id)
    return projects.filter(Q(author_id=user_id) | Exists(freelances_on)).exists()
