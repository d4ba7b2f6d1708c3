"""PATCH /api/tasks/{id}/status/: the workflow, who may move a task, and the 409 body."""

from itertools import product

import pytest

from conftest import authed_client
from notifications.models import Notification
from realtime.models import Event
from tasks.models import Task, TaskStatus
from tasks.services import InvalidTransition, task_set_status

pytestmark = pytest.mark.django_db

ALLOWED = {
    ("open", "in_progress"),
    ("in_progress", "review"),
    ("review", "done"),
    ("review", "in_progress"),
    ("open", "cancelled"),
    ("in_progress", "cancelled"),
    ("review", "cancelled"),
}
NEXT = {
    "open": ["in_progress", "cancelled"],
    "in_progress": ["review", "cancelled"],
    "review": ["done", "in_progress", "cancelled"],
    "done": [],
    "cancelled": [],
}
ALL_MOVES = list(product(TaskStatus.values, repeat=2))


def status_url(task_id: int) -> str:
    return f"/api/tasks/{task_id}/status/"


def put_task_in(task: Task, status: str) -> None:
    Task.objects.filter(id=task.id).update(status=status)


def stored_status(task: Task) -> str:
    return Task.objects.values_list("status", flat=True).get(id=task.id)


@pytest.mark.parametrize("current, requested", sorted(ALLOWED))
def test_allowed_move_is_saved_and_recorded_for_everyone_on_the_task(board, current, requested):
    put_task_in(board.task, current)

    response = authed_client(board.freelancer).patch(
        status_url(board.task.id), {"status": requested}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == requested
    assert stored_status(board.task) == requested
    events = Event.objects.filter(type="task_status_update")
    assert sorted(events.values_list("user_id", flat=True)) == sorted(
        [board.author.id, board.freelancer.id, board.watcher.id]
    )
    assert {(e.payload["previous_status"], e.payload["status"]) for e in events} == {
        (current, requested)
    }


@pytest.mark.parametrize("current, requested", [move for move in ALL_MOVES if move not in ALLOWED])
def test_refused_move_is_409_with_allowed_states_and_changes_nothing(board, current, requested):
    put_task_in(board.task, current)

    response = authed_client(board.freelancer).patch(
        status_url(board.task.id), {"status": requested}, format="json"
    )

    assert response.status_code == 409
    body = response.json()
    assert body["status"] == current
    assert body["allowed"] == NEXT[current]
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) == {"detail", "status", "allowed"}
    assert stored_status(board.task) == current
    assert not Event.objects.exists()
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    "body, error",
    [
        ({"status": "launched"}, {"status": ['"launched" is not a valid choice.']}),
        ({}, {"status": ["This field is required."]}),
        ({"status": None}, {"status": ["This field may not be null."]}),
    ],
)
def test_unknown_or_missing_status_is_a_field_error(board, body, error):
    response = authed_client(board.author).patch(status_url(board.task.id), body, format="json")

    assert response.status_code == 400
    assert response.json() == error
    assert stored_status(board.task) == "open"


@pytest.mark.parametrize("role", ["freelancer", "author", "staff"])
def test_freelancer_author_and_staff_may_change_the_status(board, role):
    response = authed_client(getattr(board, role)).patch(
        status_url(board.task.id), {"status": "in_progress"}, format="json"
    )

    assert response.status_code == 200
    assert stored_status(board.task) == "in_progress"


def test_watcher_may_look_but_not_change(board):
    client = authed_client(board.watcher)

    assert client.get(f"/api/tasks/{board.task.id}/").status_code == 200
    response = client.patch(status_url(board.task.id), {"status": "in_progress"}, format="json")

    assert response.status_code == 403
    assert stored_status(board.task) == "open"
    assert not Event.objects.exists()


def test_stranger_gets_the_same_404_as_for_a_task_that_does_not_exist(board):
    client = authed_client(board.stranger)

    foreign = client.patch(status_url(board.task.id), {"status": "in_progress"}, format="json")
    missing = client.patch(
        status_url(board.task.id + 1000), {"status": "in_progress"}, format="json"
    )

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert stored_status(board.task) == "open"
    assert not Event.objects.exists()


def test_refused_move_from_the_service_names_the_allowed_states(board):
    with pytest.raises(InvalidTransition) as refused:
        task_set_status(task_id=board.task.id, status="done", actor=board.freelancer)

    assert (refused.value.current, refused.value.allowed) == ("open", NEXT["open"])


def test_notifications_go_to_everyone_on_the_task_but_the_actor(board):
    task_set_status(task_id=board.task.id, status="in_progress", actor=board.author)

    notifications = Notification.objects.order_by("user_id")
    assert [n.user_id for n in notifications] == sorted([board.freelancer.id, board.watcher.id])
    for notification in notifications:
        assert notification.notification_type == "task_status"
        assert notification.title == "Your task “Build API” is now in progress"
        assert notification.link == f"/tasks/{board.task.id}"
        assert notification.message == "author moved it from open to in progress."


def test_staff_outside_the_task_hears_their_own_change_but_gets_no_notification(board):
    task_set_status(task_id=board.task.id, status="cancelled", actor=board.staff)

    recipients = Event.objects.filter(type="task_status_update").values_list("user_id", flat=True)
    assert board.staff.id in recipients
    assert not Notification.objects.filter(user=board.staff).exists()
    assert Notification.objects.count() == 3
