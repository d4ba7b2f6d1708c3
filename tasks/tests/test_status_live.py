"""A status change over the socket: who hears it, the `task:` copy, subscriptions, rollback."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import authed_client, token_for
from notifications.models import Notification
from realtime.models import Event
from tasks.models import Task
from tasks.services import task_set_status

pytestmark = pytest.mark.django_db(transaction=True)

# Auth user; BEGIN, task lock, watchers, UPDATE, inbox upsert with the events
# (one statement, issue 18); the notifications' savepoint, insert, inbox upsert
# with the events, the users among them who want every notification while away
# (SPEC §10), release; COMMIT; the response's watchers.
MAX_STATUS_CHANGE_QUERIES = 13

PAYLOAD_FIELDS = {
    "type",
    "task_id",
    "project_id",
    "status",
    "previous_status",
    "updated_by",
    "timestamp",
}


@sync_to_async
def change_status(user, task_id: int, status: str) -> int:
    response = authed_client(user).patch(
        f"/api/tasks/{task_id}/status/", {"status": status}, format="json"
    )
    return response.status_code


def assert_update(frame: dict, board, *, status: str, previous: str, by) -> None:
    assert frame["task_id"] == board.task.id
    assert frame["project_id"] == board.project.id
    assert (frame["status"], frame["previous_status"]) == (status, previous)
    assert frame["updated_by"] == by.id
    assert frame["timestamp"].endswith("Z")


async def test_change_reaches_everyone_on_the_task_and_the_actors_other_socket(aboard, open_socket):
    board = aboard
    freelancer_tab1 = await open_socket(token=token_for(board.freelancer))
    freelancer_tab2 = await open_socket(token=token_for(board.freelancer))
    author = await open_socket(token=token_for(board.author))
    watcher = await open_socket(token=token_for(board.watcher))
    stranger = await open_socket(token=token_for(board.stranger))

    assert await change_status(board.freelancer, board.task.id, "in_progress") == 200

    for socket in (freelancer_tab1, freelancer_tab2, author, watcher):
        frame = await socket.receive_type("task_status_update")
        assert set(frame) == PAYLOAD_FIELDS | {"seq"}
        assert frame["seq"] == 1
        assert_update(frame, board, status="in_progress", previous="open", by=board.freelancer)
    await stranger.assert_nothing()


async def test_successive_changes_arrive_in_order_with_consecutive_seqs(aboard, open_socket):
    board = aboard
    author = await open_socket(token=token_for(board.author))

    for status in ("in_progress", "review", "in_progress", "review", "done"):
        assert await change_status(board.freelancer, board.task.id, status) == 200

    frames = await author.receive_all("task_status_update", 5)
    assert [f["status"] for f in frames] == [
        "in_progress",
        "review",
        "in_progress",
        "review",
        "done",
    ]
    # Notifications interleave in the same inbox: seqs rise, one per event.
    assert [f["seq"] for f in frames] == sorted({f["seq"] for f in frames})


async def test_task_subscriber_gets_a_copy_without_seq(aboard, open_socket):
    board = aboard
    staff = await open_socket(token=token_for(board.staff))
    await staff.send({"type": "subscribe", "channel": f"task:{board.task.id}"})
    assert await staff.receive_type("subscribed") == {
        "type": "subscribed",
        "channel": f"task:{board.task.id}",
    }

    assert await change_status(board.author, board.task.id, "cancelled") == 200

    frame = await staff.receive_type("task_status_update")
    assert set(frame) == PAYLOAD_FIELDS
    assert_update(frame, board, status="cancelled", previous="open", by=board.author)
    await staff.assert_nothing()


async def test_project_subscriber_gets_a_copy_of_each_of_its_tasks(aboard, open_socket):
    board = aboard
    author = await open_socket(token=token_for(board.author))
    await author.send({"type": "subscribe", "channel": f"project:{board.project.id}"})
    await author.receive_type("subscribed")

    assert await change_status(board.freelancer, board.task.id, "in_progress") == 200

    frames = await author.receive_all("task_status_update", 2)
    assert sorted("seq" in frame for frame in frames) == [False, True]
    for frame in frames:
        assert_update(frame, board, status="in_progress", previous="open", by=board.freelancer)


async def test_unsubscribed_socket_gets_no_more_copies(aboard, open_socket):
    board = aboard
    staff = await open_socket(token=token_for(board.staff))
    channel = f"task:{board.task.id}"
    await staff.send({"type": "subscribe", "channel": channel})
    await staff.receive_type("subscribed")
    await staff.send({"type": "unsubscribe", "channel": channel})
    await staff.receive_type("unsubscribed")

    assert await change_status(board.author, board.task.id, "in_progress") == 200

    await staff.assert_nothing()


@pytest.mark.parametrize(
    "role, channel",
    [
        ("freelancer", "task"),
        ("author", "task"),
        ("watcher", "task"),
        ("staff", "task"),
        ("freelancer", "project"),
        ("author", "project"),
        ("staff", "project"),
    ],
)
async def test_participants_may_subscribe(aboard, open_socket, role, channel):
    board = aboard
    socket = await open_socket(token=token_for(getattr(board, role)))
    object_id = board.task.id if channel == "task" else board.project.id

    await socket.send({"type": "subscribe", "channel": f"{channel}:{object_id}"})

    assert (await socket.receive_type("subscribed"))["channel"] == f"{channel}:{object_id}"


@pytest.mark.parametrize(
    "role, channel",
    [
        ("stranger", "task:{task}"),
        ("stranger", "project:{project}"),
        ("stranger", "task:{missing}"),
        ("stranger", "project:{missing}"),
        # SPEC §5: a project's channel is for its author and freelancers, not watchers.
        ("watcher", "project:{project}"),
        ("staff", "task:{missing}"),
    ],
)
async def test_forbidden_and_unknown_subscriptions_get_the_same_error(
    aboard, open_socket, role, channel
):
    board = aboard
    socket = await open_socket(token=token_for(getattr(board, role)))
    channel = channel.format(task=board.task.id, project=board.project.id, missing=987654)

    await socket.send({"type": "subscribe", "channel": channel})

    error = await socket.receive_type("error")
    assert error == {
        "type": "error",
        "code": "forbidden",
        "message": "you cannot subscribe to this channel",
        "ref": None,
    }
    assert await change_status(board.author, board.task.id, "in_progress") == 200
    if role == "stranger":
        await socket.assert_nothing()


async def test_everyone_but_the_actor_is_notified(aboard, open_socket):
    board = aboard
    author = await open_socket(token=token_for(board.author))
    watcher = await open_socket(token=token_for(board.watcher))
    freelancer = await open_socket(token=token_for(board.freelancer))

    assert await change_status(board.freelancer, board.task.id, "in_progress") == 200

    for socket in (author, watcher):
        notification = await socket.receive_type("notification")
        assert notification["notification_type"] == "task_status"
        assert notification["title"] == "Your task “Build API” is now in progress"
        assert notification["link"] == f"/tasks/{board.task.id}"
    await freelancer.receive_type("task_status_update")
    await freelancer.assert_nothing()
    rows = await sync_to_async(list)(Notification.objects.values_list("user_id", flat=True))
    assert sorted(rows) == sorted([board.author.id, board.watcher.id])


async def test_rolled_back_change_reaches_nobody(aboard, open_socket, published):
    board = aboard
    sockets = [
        await open_socket(token=token_for(getattr(board, role)))
        for role in ("author", "freelancer", "watcher", "staff")
    ]
    await sockets[-1].send({"type": "subscribe", "channel": f"task:{board.task.id}"})
    await sockets[-1].receive_type("subscribed")

    class Abort(Exception):
        pass

    @sync_to_async
    def change_then_fail() -> None:
        with pytest.raises(Abort), transaction.atomic():
            task_set_status(task_id=board.task.id, status="in_progress", actor=board.author)
            raise Abort

    await change_then_fail()

    for socket in sockets:
        await socket.assert_nothing()
    assert published == []
    assert await sync_to_async(Task.objects.values_list("status", flat=True).get)() == "open"
    assert not await sync_to_async(Event.objects.exists)()
    assert not await sync_to_async(Notification.objects.exists)()


def test_nothing_is_published_before_commit(board, published):
    with transaction.atomic():
        task_set_status(task_id=board.task.id, status="in_progress", actor=board.author)
        before_commit = list(published)

    assert before_commit == []
    groups = {group for group, _ in published}
    participants = {board.author.id, board.freelancer.id, board.watcher.id}
    assert groups == {f"user.{user_id}" for user_id in participants} | {
        f"task.{board.task.id}",
        f"project.{board.project.id}",
    }
    copy = next(message for group, message in published if group == f"task.{board.task.id}")
    assert copy["type"] == "ephemeral.frame"
    assert "seq" not in json.loads(copy["text"])


def test_admin_status_edit_is_announced_like_any_other(board, published, client):
    board.staff.is_superuser = True
    board.staff.save()
    client.force_login(board.staff)

    response = client.post(
        f"/admin/tasks/task/{board.task.id}/change/",
        {
            "project": board.project.id,
            "title": "Build API",
            "freelancer": board.freelancer.id,
            "watchers": [board.watcher.id],
            "status": "done",
        },
    )

    assert response.status_code == 302
    events = Event.objects.filter(type="task_status_update")
    assert {e.user_id for e in events} == {
        board.author.id,
        board.freelancer.id,
        board.watcher.id,
        board.staff.id,
    }
    assert {(e.payload["previous_status"], e.payload["status"]) for e in events} == {
        ("open", "done")
    }
    assert f"task.{board.task.id}" in {group for group, _ in published}


def count_status_change_queries(board, make_user, *, watchers: int) -> int:
    task = Task.objects.create(project=board.project, title="Counted", freelancer=board.freelancer)
    task.watchers.add(*[make_user() for _ in range(watchers)])
    client = authed_client(board.freelancer)
    with CaptureQueriesContext(connection) as queries:
        response = client.patch(
            f"/api/tasks/{task.id}/status/", {"status": "in_progress"}, format="json"
        )
    assert response.status_code == 200
    return len(queries)


def test_status_change_takes_a_fixed_number_of_queries_however_many_watchers(board, make_user):
    one = count_status_change_queries(board, make_user, watchers=1)
    forty = count_status_change_queries(board, make_user, watchers=40)

    assert one == forty <= MAX_STATUS_CHANGE_QUERIES
