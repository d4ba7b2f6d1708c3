"""Hostile and careless clients against a real server process (issue 9, SPEC §5).

Each of these lives in the server (daphne/autobahn, the transport's buffers,
the consumer's lifecycle), so each runs against `python -m quantumworks.serve`.
"""

import asyncio
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
from quantumworks.realtime import DurableEvent, record_events
from quantumworks.testing.ws import RawClient, next_of_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

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
    for start in range(0, count, batch):
        with transaction.atomic():
            record_events(
                DurableEvent(
                    type="notification", payload={"n": n, "body": body}, user_ids=[user_id]
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
async def test_closing_during_a_replay_runs_the_disconnect_cleanup(amake_user, servers, how):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="hi")
    await fill_inbox(alice.id, 3000, 200)
    server = servers()
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
async def test_oversized_frame_closes_1009_too_large(amake_user, servers):
    alice = await amake_user("alice")
    server = servers()
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
