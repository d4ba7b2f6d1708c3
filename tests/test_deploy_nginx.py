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
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import token_for
from realtime.models import Event
from tasks.models import Project, Task
from testkit import eventually_async
from testkit.infra import Nginx
from testkit.servers import ServerProcess
from testkit.ws import ResumingReader, next_of_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(django_db_setup):
    """Two processes and nginx, shared by this module's tests (each starts in seconds)."""
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
        return "203.0.113.9" in output and f"ws connect user={alice.id} client=127.0.0.1" in output

    await eventually_async(logged, within=5)
    # nginx's own logs never show the token either (SPEC §6).
    token = token_for(alice)
    assert "/ws/?token=[redacted]" in nginx.access_log()
    assert token.split(".")[2] not in nginx.access_log() + nginx.error_log()


async def test_forwarded_headers_are_ignored_from_an_untrusted_peer(amake_user):
    trusting = ServerProcess(access_log=True).start()
    exposed = ServerProcess(access_log=True, QW_TRUSTED_PROXIES="").start()
    try:
        for server in (trusting, exposed):
            request = urllib.request.Request(f"{server.http_url}/healthz")
            request.add_header("X-Forwarded-For", "198.51.100.7")
            await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
        await eventually_async(
            lambda: "198.51.100.7:0 - " in trusting.output() and "GET /healthz" in exposed.output(),
            within=5,
            what="both access logs",
        )
        assert "198.51.100.7" not in exposed.output()
        assert "127.0.0.1:" in exposed.output()
    finally:
        trusting.stop()
        exposed.stop()


async def test_rolling_restart_under_chat_loses_nothing(amake_user):
    """SIGTERM each process in turn (4012) while chat flows; clients reconnect through nginx."""
    fast = {"QW_RATE_CHAT_PER_MIN": "100000", "QW_HEARTBEAT_SECONDS": "2"}
    servers = [ServerProcess(**fast).start(), ServerProcess(**fast).start()]
    nginx = Nginx([server.port for server in servers]).start()
    alice, bob = await amake_user("alice"), await amake_user("bob")
    rolled = asyncio.Event()
    bob_reader = ResumingReader(nginx.ws_url, token_for(bob))
    acked: dict[str, int] = {}
    closes: list[int] = []

    async def send_all() -> None:
        """Alice sends until the roll is over; when her socket is closed under her she
        reconnects through nginx and resends the unacked message with its id."""
        n = 0
        while not rolled.is_set():
            try:
                async with connect(f"{nginx.ws_url}?token={token_for(alice)}") as ws:
                    await next_of_type(ws, "authenticated")
                    while not rolled.is_set():
                        cmid = f"c{n}"
                        await ws.send(
                            json.dumps(
                                {
                                    "type": "chat_message",
                                    "receiver_id": bob.id,
                                    "content": cmid,
                                    "client_msg_id": cmid,
                                }
                            )
                        )
                        ack = await next_of_type(ws, "message_sent", timeout=15)
                        acked[ack["client_msg_id"]] = ack["message_id"]
                        n += 1
                        await asyncio.sleep(0.05)
            except ConnectionClosed as closed:
                closes.append(closed.rcvd.code if closed.rcvd else 1006)
            except (InvalidStatus, OSError):
                # nginx found no process to take it (both restarting): back off, retry.
                await asyncio.sleep(0.2)

    async def roll() -> None:
        for index, server in enumerate(servers):
            await eventually_async(lambda want=30 * (index + 1): len(acked) >= want, within=30)
            port = server.port
            await asyncio.to_thread(server.terminate)
            server.stop()
            servers[index] = await asyncio.to_thread(ServerProcess(port, **fast).start)
        await asyncio.sleep(1)  # a little traffic on the restarted pair
        rolled.set()

    try:
        await asyncio.wait_for(bob_reader.online.wait(), 10)
        await asyncio.gather(send_all(), roll())
        total = len(acked)
        await bob_reader.wait_for(total)
    finally:
        await bob_reader.stop()
        nginx.cleanup()
        for server in servers:
            server.stop()
    stored = await sync_to_async(
        lambda: list(Event.objects.filter(user=bob).order_by("seq").values_list("seq", flat=True))
    )()
    assert len(set(acked.values())) == total
    assert stored == list(range(1, total + 1))
    assert bob_reader.seqs == stored  # 0 lost, 0 duplicated after dedupe, 0 reordered
    # The restarts really cut sockets: alice's (4012 relayed by nginx) and bob's.
    assert (4012 in closes, bob_reader.reconnects >= 1) == (True, True)
