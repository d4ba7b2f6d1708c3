"""Real daphne processes sharing PostgreSQL and Redis (SPEC §2, §4, §5).

What only a real server shows: events crossing processes through the Redis
layer, autobahn's own 64 KiB limit (1009), the handshake refusal of a foreign
Origin, SIGTERM's 4012, and a killed process whose clients resume elsewhere.
"""

import asyncio
import json
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import token_for
from realtime.models import Event
from testkit import eventually_async
from testkit.ws import next_of_type

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


async def test_message_sent_on_one_process_arrives_on_the_other(amake_user, servers):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    one, two = servers(), servers()
    async with (
        connect(f"{one.ws_url}?token={token_for(alice)}") as alice_ws,
        connect(two.ws_url, subprotocols=["bearer", token_for(bob)]) as bob_ws,
    ):
        assert bob_ws.subprotocol == "bearer"
        await next_of_type(alice_ws, "authenticated")
        await next_of_type(bob_ws, "authenticated")
        await alice_ws.send(
            json.dumps({"type": "chat_message", "receiver_id": bob.id, "content": "across"})
        )
        ack = await next_of_type(alice_ws, "message_sent")
        received = await next_of_type(bob_ws, "chat_message")
        assert (received["message_id"], received["content"]) == (ack["message_id"], "across")
        await bob_ws.send(
            json.dumps({"type": "chat_message", "receiver_id": alice.id, "content": "and back"})
        )
        reply = await next_of_type(alice_ws, "chat_message")
        while reply["sender_id"] != bob.id:  # alice's own message comes first
            reply = await next_of_type(alice_ws, "chat_message")
        assert reply["content"] == "and back"


async def test_real_server_close_codes_and_limits(amake_user, servers):
    alice = await amake_user("alice")
    server = servers()
    async with connect(f"{server.ws_url}?token=garbage") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 4001

    async with connect(f"{server.ws_url}?token={token_for(alice)}", max_size=None) as ws:
        await next_of_type(ws, "authenticated")
        await ws.send("x" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.recv()
        assert closed.value.rcvd.code == 1009

    with pytest.raises(InvalidStatus) as refused:
        async with connect(
            f"{server.ws_url}?token={token_for(alice)}", origin="https://evil.example"
        ):
            pass
    assert refused.value.response.status_code == 403

    async with connect(f"{server.ws_url}?token={token_for(alice)}", origin=server.http_url) as ws:
        assert (await next_of_type(ws, "authenticated"))["user_id"] == alice.id


async def test_idle_socket_stays_open_past_the_layer_read_timeout(amake_user, servers):
    """channels-redis blocks 5 s per read; a too-short socket_timeout kills idle sockets."""
    alice, bob = await amake_user("alice"), await amake_user("bob")
    server = servers()
    async with (
        connect(f"{server.ws_url}?token={token_for(alice)}") as alice_ws,
        connect(f"{server.ws_url}?token={token_for(bob)}") as bob_ws,
    ):
        await next_of_type(alice_ws, "authenticated")
        await next_of_type(bob_ws, "authenticated")
        await asyncio.sleep(15)
        await alice_ws.send(
            json.dumps({"type": "chat_message", "receiver_id": bob.id, "content": "still here"})
        )
        assert (await next_of_type(bob_ws, "chat_message"))["content"] == "still here"


async def test_sigterm_closes_every_socket_with_4012(amake_user, servers):
    alice = await amake_user("alice")
    server = servers()
    async with (
        connect(f"{server.ws_url}?token={token_for(alice)}") as tab1,
        connect(f"{server.ws_url}?token={token_for(alice)}") as tab2,
    ):
        await next_of_type(tab1, "authenticated")
        await next_of_type(tab2, "authenticated")
        exit_code = await asyncio.to_thread(server.terminate)
        for ws in (tab1, tab2):
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.recv()
            assert closed.value.rcvd.code == 4012
    assert exit_code == 0  # it stopped by itself; terminate() kills (-9) after 10 s


async def test_killed_server_client_resumes_on_the_other_exactly_once(amake_user, servers):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    # above the default 100/min rate limit, to stream for real
    doomed, survivor = servers(QW_RATE_CHAT_PER_MIN="10000"), servers(QW_RATE_CHAT_PER_MIN="10000")
    total, kill_after = 150, 40
    seen: list[int] = []

    async def receive_into(ws) -> None:
        async for text in ws:
            frame = json.loads(text)
            if frame["type"] == "chat_message":
                seen.append(frame["seq"])

    async with connect(f"{survivor.ws_url}?token={token_for(alice)}") as alice_ws:
        await next_of_type(alice_ws, "authenticated")
        bob_ws = await connect(f"{doomed.ws_url}?token={token_for(bob)}")
        await next_of_type(bob_ws, "authenticated")
        receiving = asyncio.create_task(receive_into(bob_ws))
        for n in range(total):
            await alice_ws.send(
                json.dumps(
                    {
                        "type": "chat_message",
                        "receiver_id": bob.id,
                        "content": f"m{n}",
                        "client_msg_id": f"c{n}",
                    }
                )
            )
            await next_of_type(alice_ws, "message_sent")
            if n == kill_after:
                await asyncio.to_thread(doomed.kill)
                with pytest.raises(ConnectionClosed):
                    await receiving  # the dead server's socket ends
                bob_ws = await connect(
                    f"{survivor.ws_url}?token={token_for(bob)}&last_seq={seen[-1] if seen else 0}"
                )
                receiving = asyncio.create_task(receive_into(bob_ws))
        await eventually_async(lambda: len(seen) >= total, within=10, what=f"{total} messages")
        receiving.cancel()
        await bob_ws.close()

    stored = await sync_to_async(
        lambda: list(Event.objects.filter(user=bob).order_by("seq").values_list("seq", flat=True))
    )()
    assert stored == list(range(1, total + 1))
    assert seen == stored  # every committed message, in order, exactly once


async def test_tokens_never_reach_the_logs(amake_user, servers):
    alice = await amake_user("alice")
    token = token_for(alice)
    server = servers(access_log=True)
    async with connect(f"{server.ws_url}?token={token}") as ws:
        await next_of_type(ws, "authenticated")
    await asyncio.to_thread(
        urllib.request.urlopen, f"{server.http_url}/healthz?token={token}", timeout=5
    )
    output = await asyncio.to_thread(
        server.wait_for_output, "GET /healthz?token=", f"ws connect user={alice.id}"
    )
    assert "GET /healthz?token=[redacted]" in output
    assert token not in output
    assert token.split(".")[2] not in output
