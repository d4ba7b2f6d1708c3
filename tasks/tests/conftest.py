"""A project with one task and a user in each role around it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async

from tasks.models import Project, Task


@dataclass
class Board:
    author: object
    freelancer: object
    watcher: object
    stranger: object
    staff: object
    project: Project
    task: Task


def build_board(make_user) -> Board:
    author = make_user("author")
    freelancer = make_user("freelancer")
    watcher = make_user("watcher")
    stranger = make_user("stranger")
    staff = make_user("staff", is_staff=True)
    project = Project.objects.create(author=author, title="Website")
    task = Task.objects.create(project=project, title="Build API", freelancer=freelancer)
    task.watchers.add(watcher)
    return Board(author, freelancer, watcher, stranger, staff, project, task)


@pytest.fixture
def board(make_user) -> Board:
    return build_board(make_user)


@pytest.fixture
async def aboard(make_user) -> Board:
    return await sync_to_async(build_board)(make_user)
