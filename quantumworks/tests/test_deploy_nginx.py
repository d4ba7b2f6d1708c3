"""Through real nginx (deploy/nginx.conf.template) in front of two real processes (SPEC §2).

nginx runs as our own child on a free port with a generated config; each
process is asked over its own /metrics how many sockets it holds, so the test
knows where nginx put every client.
"""

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from conftest import token_for
from quantumworks.testing.infra import Nginx
from quantumworks.testing.servers import ServerProcess
from quantumworks.testing.ws import next_of_type
from tasks.models import Project, Task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def cluster():
    servers = [ServerProcess(access_log=True).start(), ServerProcess(access_log=True).start()]
    nginx = Nginx([server.port for server in servers]).start()
    yield nginx, servers
    nginx.cleanup()
    for server in servers:
        server.stop()


def open_connections(server: ServerProcess) -> int:
    with urllib.request.urlopen(f"{server.http_url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("qw_open_connections "):
                return int(float(line.split()[1]))
    raise AssertionError("no qw_open_connections in /metrics")


async def connect_and_locate(nginx: Nginx, servers: list[ServerProcess], user):
    """A socket through nginx, and the index of the process it landed on."""
    before = [await asyncio.to_thread(open_connections, server) for server in servers]
    ws = await connect(f"{nginx.ws_url}?token={token_for(user)}")
    await next_of_type(ws, "authenticated")
    after = [await asyncio.to_thread(open_connections, server) for server in servers]
    grown = [index for index, (b, a) in enumerate(zip(before, after, strict=True)) if a > b]
    assert len(grown) == 1, (before, after)
    return ws, grown[0]


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None):
    request = urllib.request.Request(
        url, method=method, data=json.dumps(body).encode() if body else None
    )
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


async def test_sockets_spread_over_both_processes_and_events_cross_them(amake_user, cluster):
    nginx, servers = cluster
    author, freelancer, watcher = [await amake_user(name) for name in ("author", "free", "watch")]
    project = await sync_to_async(Project.objects.create)(author=author, title="Site")
    task = await sync_to_async(Task.objects.create)(
        project=project, title="API", freelancer=freelancer
    )

    await sync_to_async(task.watchers.add)(watcher)
    sockets = {}
    for user in (author, freelancer, watcher):
        sockets[user.id] = await connect_and_locate(nginx, servers, user)
    try:
        landed = {index for _ws, index in sockets.values()}
        assert landed == {0, 1}  # least_conn: three sockets over two processes use both

        # A chat message from a socket on one process to a user on the other.
        first_on = {}
        for user in (author, freelancer, watcher):
            first_on.setdefault(sockets[user.id][1], user)
        sender, receiver = first_on[0], first_on[1]
        sender_ws, receiver_ws = sockets[sender.id][0], sockets[receiver.id][0]
        await sender_ws.send(
            json.dumps({"type": "chat_message", "receiver_id": receiver.id, "content": "via nginx"})
        )
        ack = await next_of_type(sender_ws, "message_sent")
        got = await next_of_type(receiver_ws, "chat_message")
        assert (got["message_id"], got["content"]) == (ack["message_id"], "via nginx")

        # A task update over REST through nginx reaches subscribers on both processes.
        watcher_ws = sockets[watcher.id][0]
        await watcher_ws.send(json.dumps({"type": "subscribe", "channel": f"task:{task.id}"}))
        await next_of_type(watcher_ws, "subscribed")
        status, body = await asyncio.to_thread(
            http,
            "PATCH",
            f"{nginx.http_url}/api/tasks/{task.id}/status/",
            token=token_for(freelancer),
            body={"status": "in_progress"},
        )
        assert status == 200, body
        for user in (author, freelancer, watcher):
            update = await next_of_type(sockets[user.id][0], "task_status_update")
            assert (update["task_id"], update["status"]) == (task.id, "in_progress")
    finally:
        for ws, _index in sockets.values():
            await ws.close()


async def test_health_readiness_and_bad_input_answer_through_nginx(amake_user, cluster):
    nginx, _servers = cluster
    assert await asyncio.to_thread(http, "GET", f"{nginx.http_url}/healthz") == (
        200,
        {"status": "ok"},
    )
    status, body = await asyncio.to_thread(http, "GET", f"{nginx.http_url}/readyz")
    assert (status, body["failed"]) == (200, [])
    # A bad REST body still gets DRF's 400 with field errors through the proxy.
    alice = await amake_user("alice")
    status, body = await asyncio.to_thread(
        http, "POST", f"{nginx.http_url}/api/chat/messages/", token=token_for(alice), body={}
    )
    assert status == 400 and "content" in body


async def test_logs_show_the_client_address_nginx_forwarded(amake_user, cluster):
    """nginx appends the peer it saw; the process believes it because nginx is a trusted proxy."""
    nginx, servers = cluster
    alice = await amake_user("alice")
    request = urllib.request.Request(f"{nginx.http_url}/healthz")
    # What an upstream proxy (a CDN in front of nginx) would have put there.
    request.add_header("X-Forwarded-For", "203.0.113.9")
    await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
    ws, _index = await connect_and_locate(nginx, servers, alice)
    await ws.close()

    def logged() -> bool:
        output = "".join(server.output() for server in servers)
        return (
            "203.0.113.9:0 - - " in output
            and f"ws connect user={alice.id} client=127.0.0.1" in output
        )

    async with asyncio.timeout(5):
        while not logged():
            await asyncio.sleep(0.05)


async def test_forwarded_headers_are_ignored_from_an_untrusted_peer(amake_user):
    trusting = ServerProcess(access_log=True).start()
    exposed = ServerProcess(access_log=True, QW_TRUSTED_PROXIES="").start()
    try:
        for server in (trusting, exposed):
            request = urllib.request.Request(f"{server.http_url}/healthz")
            request.add_header("X-Forwarded-For", "198.51.100.7")
            await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
        async with asyncio.timeout(5):
            while not (
                "198.51.100.7:0 - - [" in trusting.output()
                and '"GET /healthz" 200' in exposed.output()
            ):
                await asyncio.sleep(0.05)
        assert "198.51.100.7" not in exposed.output()
        assert "127.0.0.1:" in exposed.output()
    finally:
        trusting.stop()
        exposed.stop()
