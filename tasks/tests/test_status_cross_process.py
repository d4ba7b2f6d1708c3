"""A status change made in this process reaches subscribers on another server process."""

import json

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from conftest import authed_client, token_for
from testkit.servers import ServerProcess
from testkit.ws import next_of_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


async def test_change_through_rest_here_reaches_sockets_on_another_process(aboard):
    board = aboard
    server = await sync_to_async(ServerProcess().start)()
    try:
        async with (
            connect(f"{server.ws_url}?token={token_for(board.staff)}") as subscriber,
            connect(f"{server.ws_url}?token={token_for(board.watcher)}") as watcher,
        ):
            await next_of_type(subscriber, "authenticated")
            await next_of_type(watcher, "authenticated")
            channel = f"task:{board.task.id}"
            await subscriber.send(json.dumps({"type": "subscribe", "channel": channel}))
            assert await next_of_type(subscriber, "subscribed") == {
                "type": "subscribed",
                "channel": channel,
            }

            response = await sync_to_async(authed_client(board.freelancer).patch)(
                f"/api/tasks/{board.task.id}/status/", {"status": "in_progress"}, format="json"
            )
            assert response.status_code == 200

            copy = await next_of_type(subscriber, "task_status_update")
            durable = await next_of_type(watcher, "task_status_update")
            assert "seq" not in copy
            assert durable.pop("seq") == 1
            assert copy == durable
            assert (copy["task_id"], copy["status"], copy["updated_by"]) == (
                board.task.id,
                "in_progress",
                board.freelancer.id,
            )
    finally:
        await sync_to_async(server.stop)()
