"""The fan-out fast lane (realtime.layers) on a real server: work per fan-out, SPEC §4 kept.

Counted from the server's own /metrics: group messages its layer decoded,
and copies written by the fast lane or queued to a consumer.
"""

import json

import pytest
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from websockets.asyncio.client import connect

from chat.services import message_send
from conftest import token_for
from realtime.publisher import publisher
from tasks.models import Project, Task
from tasks.services import task_set_status
from testkit.ws import next_of_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DECODES, FAST, QUEUED = "qw_fanout_decodes_total", "qw_fanout_fast_total", "qw_fanout_queued_total"
SUBSCRIBERS = 6


def counters(server) -> dict[str, float]:
    return {name: server.metric(name) for name in (DECODES, FAST, QUEUED)}


@sync_to_async
def make_task(author) -> int:
    project = Project.objects.create(author_id=author.id, title="fan-out")
    return Task.objects.create(project=project, title="fan-out task").id


@sync_to_async
def set_status(task_id: int, status: str, actor) -> None:
    task_set_status(task_id=task_id, status=status, actor=actor)
    close_old_connections()


async def test_a_fanout_is_decoded_once_and_written_to_every_member_by_the_fast_lane(
    amake_user, servers
):
    server = servers()
    author = await amake_user("author")
    watchers = [await amake_user(f"staff{n}", is_staff=True) for n in range(SUBSCRIBERS)]
    task_id = await make_task(author)
    sockets = [
        await connect(f"{server.ws_url}?token={token_for(user)}", compression=None)
        for user in watchers
    ]
    try:
        for ws in sockets:
            await next_of_type(ws, "authenticated")
            await ws.send(json.dumps({"type": "subscribe", "channel": f"task:{task_id}"}))
            await next_of_type(ws, "subscribed")
        before = counters(server)
        await set_status(task_id, "in_progress", author)
        frames = [await next_of_type(ws, "task_status_update") for ws in sockets]
        assert {(f["task_id"], f["status"], "seq" in f) for f in frames} == {
            (task_id, "in_progress", False)
        }
        # The author's durable copy has no socket here: one group message reached this process.
        server.wait_for_metric(FAST, before[FAST] + SUBSCRIBERS)
        after = counters(server)
        assert after[DECODES] - before[DECODES] == 1
        assert after[QUEUED] == before[QUEUED]
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_seq_gap_takes_the_queued_path_and_is_repaired_in_order(amake_user, servers):
    """A dropped doorbell: the next event cannot go by the fast lane; the consumer repairs."""
    server = servers()
    alice, bob = await amake_user("alice"), await amake_user("bob")
    original = publisher.publish
    dropped: list = []

    def drop_first(messages):
        if not dropped and any(message["type"] == "inbox.events" for _, message in messages):
            dropped.append(messages)
            return
        original(messages)

    async with connect(f"{server.ws_url}?token={token_for(bob)}", compression=None) as ws:
        await next_of_type(ws, "authenticated")
        before = counters(server)
        publisher.publish = drop_first
        try:
            await sync_to_async(message_send)(
                sender_id=alice.id, receiver_id=bob.id, content="lost"
            )
            await sync_to_async(message_send)(
                sender_id=alice.id, receiver_id=bob.id, content="next"
            )
        finally:
            publisher.publish = original
        first = await next_of_type(ws, "chat_message")
        second = await next_of_type(ws, "chat_message")
        assert [(first["seq"], first["content"]), (second["seq"], second["content"])] == [
            (1, "lost"),
            (2, "next"),
        ]
        server.wait_for_metric(QUEUED, before[QUEUED] + 1)
        assert server.metric(FAST) == before[FAST]
        # In order again: the next event goes by the fast lane.
        await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="third")
        third = await next_of_type(ws, "chat_message")
        assert (third["seq"], third["content"]) == (3, "third")
        server.wait_for_metric(FAST, before[FAST] + 1)
    assert dropped
