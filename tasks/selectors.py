"""Task and project reads, including who may see what."""

from __future__ import annotations

from django.db.models import Q

from tasks.models import Project, Task


def user_can_view_task(*, user_id: int, is_staff: bool, task_id: int) -> bool:
    """Its freelancer, its project's author, its watchers, staff."""
    tasks = Task.objects.filter(id=task_id)
    if is_staff:
        return tasks.exists()
    return tasks.filter(
        Q(freelancer_id=user_id) | Q(project__author_id=user_id) | Q(watchers__id=user_id)
    ).exists()


def user_can_view_project(*, user_id: int, is_staff: bool, project_id: int) -> bool:
    """Its author, freelancers of its tasks, staff."""
    projects = Project.objects.filter(id=project_id)
    if is_staff:
        return projects.exists()
    return projects.filter(Q(author_id=user_id) | Q(tasks__freelancer_id=user_id)).exists()
