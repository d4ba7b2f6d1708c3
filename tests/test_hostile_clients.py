"""Hostile and careless clients against a real server process (issue 9, SPEC §5).

Each of these lives in the server (daphne/autobahn, the transport's buffers,
the consumer's lifecycle), so each runs against `python -m servers`.
"""

import asyncio
import functools
import json
import socket
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, transaction
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chat.services import message_send
from conftest import token_for
from realtime.outbox import DurableEvent, record_events
from testkit.ws import RawClient, next_of_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(params=["uvicorn", "daphne"])
def server_env(request) -> dict[str, str]:
    """The send budget, the dropped sends on a closing socket and the 1009 reason
    live in each server's protocol subclass (servers.ws_uvicorn, servers.ws_daphne)."""
    return {"QW_SERVER": request.param}


MB = 1024 * 1024


async def closed_with(ws) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None, "the server dropped the connection without a close"
    return closed.value.rcvd.code, closed.value.rcvd.reason


@sync_to_async
def fill_inbox(user_id: int, count: int, size: int, batch: int = 100) -> None:
    """`count` durable events of about `size` bytes each for one user, published live."""
    body = "x" * size
    # Shaped like a real notification: every frame of the suite is checked against docs/asyncapi.yaml.
    payload = {
        "notification_type": "flood",
        "title": "flood",
        "message": body,
        "link": "",
        "created_at": "2026-12-06T00:00:00Z",
    }
    for start in range(0, count, batch):
        with transaction.atomic():
            record_events(
                DurableEvent(
                    type="notification",
                    payload={"notification_id": n + 1, **payload},
                    user_ids=[user_id],
                )
                for n in range(start, min(start + batch, count))
            )


def no_tracebacks(server) -> None:
    output = server.output()
    assert "Traceback" not in output, output[-4000:]
    assert "Disconnected" not in output, output[-4000:]


# --- a user deleted while connected ---------------------------------------------
async def test_deleted_users_sockets_close_4003_on_every_process(amake_user, servers):
    alice = await amake_user("alice")
    one, two = servers(), servers()
    async with (
        connect(f"{one.ws_url}?token={token_for(alice)}") as tab1,
        connect(f"{two.ws_url}?token={token_for(alice)}") as tab2,
    ):
        await next_of_type(tab1, "authenticated")
        await next_of_type(tab2, "authenticated")
        await sync_to_async(alice.delete)()
        assert (await closed_with(tab1))[0] == 4003
        assert (await closed_with(tab2))[0] == 4003


async def test_frame_from_a_user_gone_without_a_signal_closes_4003(amake_user, servers):
    """The close message can be late (or the row removed by SQL): the frame itself finds out."""
    alice, bob = await amake_user("alice"), await amake_user("bob")
    server = servers()
    async with connect(f"{server.ws_url}?token={token_for(alice)}") as ws:
        await next_of_type(ws, "authenticated")

        @sync_to_async
        def delete_by_sql() -> None:
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM auth_user WHERE id = %s", [alice.id])

        await delete_by_sql()
        await ws.send(json.dumps({"type": "chat_message", "receiver_id": bob.id, "content": "hi"}))
        frames = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(10):
                while True:
                    frames.append(json.loads(await ws.recv()))
        assert closed.value.rcvd.code == 4003
        assert not [f for f in frames if f.get("code") == "server_error"], frames
    no_tracebacks(server)


# --- closing during a replay ------------------------------------------------------
def presence_online(server, viewer) -> list[int]:
    request = urllib.request.Request(
        f"{server.http_url}/api/presence/", headers={"Authorization": f"Bearer {token_for(viewer)}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())["online"]


@pytest.mark.parametrize("how", ["close", "oversized_frame"])
async def test_closing_during_a_replay_runs_the_disconnect_cleanup(
    amake_user, servers, how, server_env
):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="hi")
    await fill_inbox(alice.id, 3000, 200)
    server = servers(**server_env)
    baseline = server.metric("qw_open_connections")
    for _ in range(3):
        client = await RawClient(f"{server.ws_url}?token={token_for(alice)}").connect()
        try:
            await client.send_text(json.dumps({"type": "resume", "last_seq": 0}))
            await client._receive_some()  # the replay is under way
            if how == "close":
                client.protocol.send_close(1000)
                await client._flush()
            else:
                await client.send_text("x" * (64 * 1024 + 1))
            await client.read_frames()
        finally:
            client.close()
    server.wait_for_metric("qw_open_connections", baseline)
    assert alice.id not in presence_online(server, bob)
    no_tracebacks(server)


# --- the 1009 close -------------------------------------------------------------
async def test_oversized_frame_closes_1009_too_large(amake_user, servers, server_env):
    alice = await amake_user("alice")
    server = servers(**server_env)
    async with connect(f"{server.ws_url}?token={token_for(alice)}", max_size=None) as ws:
        await next_of_type(ws, "authenticated")
        await ws.send("x" * (64 * 1024 + 1))
        assert await closed_with(ws) == (1009, "too_large")
    output = server.wait_for_output("too_large")
    assert "Traceback" not in output


# --- ALLOWED_HOSTS on the handshake ---------------------------------------------
def handshake_status(server, host: str, origin: str) -> int:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            (
                "GET /ws/ HTTP/1.1\r\n"
                f"Host: {host}\r\n"
                f"Origin: {origin}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        return int(sock.recv(4096).split(b" ", 2)[1])


async def test_foreign_host_with_a_matching_origin_is_refused(servers):
    server = servers()
    assert (
        await asyncio.to_thread(
            handshake_status, server, f"127.0.0.1:{server.port}", f"http://127.0.0.1:{server.port}"
        )
        == 101
    )
    assert (
        await asyncio.to_thread(handshake_status, server, "evil.example", "http://evil.example")
        == 403
    )
    output = server.wait_for_output("host evil.example not allowed")
    assert "Traceback" not in output


# --- slow consumers: what the server holds per socket is bounded ------------------
# Growth of the server's RSS allowed while one hostile socket is served: the
# 1 MiB send budget, one replay batch (300 events of 10 KB, as rows and as
# frame text) and allocator slack. Before the budget it grew by the whole
# amount fed (tens of MB).
RSS_BOUND = 12 * MB


def kernel_send_buffer_max() -> int:
    with open("/proc/sys/net/ipv4/tcp_wmem") as limits:
        return int(limits.read().split()[2])


async def rss_while(server, work) -> int:
    """Peak RSS growth of the server process while `work` runs."""
    before = server.rss_bytes()
    peak = before
    task = asyncio.create_task(work)
    while not task.done():
        peak = max(peak, server.rss_bytes())
        await asyncio.wait({task}, timeout=0.02)
    await task
    return max(peak, server.rss_bytes()) - before


async def warm_up(server, user) -> None:
    """One reading socket takes a replay of 2 MB, so pools and caches exist before measuring."""
    async with connect(f"{server.ws_url}?token={token_for(user)}&last_seq=0", max_size=None) as ws:
        await next_of_type(ws, "resumed", timeout=30)


async def test_never_reading_client_is_closed_4008_and_memory_stays_bounded(
    amake_user, servers, server_env
):
    bob = await amake_user("bob")
    await fill_inbox(bob.id, 200, 10_000)
    server = servers(**server_env)
    await warm_up(server, bob)
    client = await RawClient(f"{server.ws_url}?token={token_for(bob)}").connect()
    fed = 0

    async def events_flow_while_it_pings() -> None:
        nonlocal fed
        for _ in range(30):  # 30 MB of live events, one ping per MB
            await fill_inbox(bob.id, 100, 10_000)
            fed += 100 * 10_000
            await client.send_text(json.dumps({"type": "ping"}))

    try:
        growth = await rss_while(server, events_flow_while_it_pings())
        print(f"never-reading client: fed {fed / MB:.0f} MB, server RSS grew {growth / MB:.1f} MB")
        assert growth < RSS_BOUND
        server.wait_for_output(f"slow consumer user={bob.id}")
        frames = await client.read_frames()  # it reads again: what was queued, then the close
        assert RawClient.close_of(frames) == (4008, "slow_consumer")
        # What it reads back is bounded by the budget plus what the kernel
        # took before the budget filled: the server's send buffer autotunes up
        # to tcp_wmem's maximum (how far depends on the server's write pattern:
        # about 2.5 MB under daphne, 3.6 MB under uvicorn here).
        read_back = sum(len(frame.data) for frame in frames)
        assert read_back < 2 * MB + kernel_send_buffer_max(), (read_back, fed)
    finally:
        client.close()
    server.wait_for_metric("qw_open_connections", 0)
    no_tracebacks(server)


async def test_resume_flood_that_never_reads_is_closed_4008_and_memory_stays_bounded(
    amake_user, servers, server_env
):
    bob = await amake_user("bob")
    await fill_inbox(bob.id, 600, 10_000)  # a 6 MB inbox
    server = servers(QW_SOCKET_SEND_TIMEOUT_SECONDS="2", **server_env)
    await warm_up(server, bob)
    client = await RawClient(f"{server.ws_url}?token={token_for(bob)}").connect()

    async def fifteen_resumes_then_wait() -> None:
        for _ in range(15):
            await client.send_text(json.dumps({"type": "resume", "last_seq": 0}))
        await asyncio.to_thread(
            functools.partial(server.wait_for_output, f"slow consumer user={bob.id}", timeout=30)
        )

    try:
        growth = await rss_while(server, fifteen_resumes_then_wait())
        print(f"resume flood over a 6 MB inbox: server RSS grew {growth / MB:.1f} MB")
        assert growth < RSS_BOUND
        frames = await client.read_frames()
        assert RawClient.close_of(frames) == (4008, "slow_consumer")
    finally:
        client.close()
    server.wait_for_metric("qw_open_connections", 0)
    no_tracebacks(server)


async def test_slow_but_reading_client_gets_a_whole_replay(amake_user, servers, server_env):
    """Pacing is not punishment: a client that reads, however late, gets everything."""
    bob = await amake_user("bob")
    await fill_inbox(bob.id, 600, 10_000)
    server = servers(QW_SOCKET_SEND_BUDGET_BYTES=str(256 * 1024), **server_env)
    client = await RawClient(f"{server.ws_url}?token={token_for(bob)}").connect()
    try:
        await client.send_text(json.dumps({"type": "resume", "last_seq": 0}))
        seqs: list[int] = []
        async with asyncio.timeout(60):
            while not seqs or seqs[-1] != "resumed":
                await client._receive_some()
                for event in client.protocol.events_received():
                    frame = json.loads(event.data)
                    seqs.append(frame.get("seq", frame["type"]))
        assert [s for s in seqs if s not in ("authenticated", "resumed")] == list(range(1, 601))
    finally:
        client.close()
    no_tracebacks(server)


def _raw_http(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send a request by hand and read what comes back until the server closes or answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = raw.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_body_declared_over_the_limit_is_refused_413_before_it_is_sent(servers, settings):
    # uvicorn, the default server, hands the request to the app before its body;
    # daphne (twisted) reads the whole body first, so there only nginx's
    # client_max_body_size stops it this early (deploy/nginx.conf.template).
    server = servers(QW_SERVER="uvicorn")
    declared = settings.QW_MAX_REQUEST_BYTES + 1
    head = (
        "POST /api/chat/attachments/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()

    # Not a byte of the body is sent: the answer comes from the declared length alone.
    answer = _raw_http(server.port, head)

    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large", answer[:300]
    assert rest.endswith(
        f'{{"detail":"The request body is over the {settings.QW_MAX_REQUEST_BYTES}-byte limit."}}'.encode()
    )


def test_a_chunked_body_over_the_limit_is_cut_off_with_413_and_nothing_stored(servers, settings):
    from chat.models import Attachment

    server = servers(QW_SERVER="uvicorn")
    head = (
        b"POST /api/chat/attachments/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"y" * (1024 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(head)
        answer = b""
        try:
            for _ in range(settings.QW_MAX_REQUEST_BYTES // len(piece) + 2):
                raw.sendall(chunk)
        except OSError:  # the server answered and closed while we were still sending
            pass
        while True:
            try:
                data = raw.recv(65536)
            except OSError:
                break
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert not Attachment.objects.exists()
