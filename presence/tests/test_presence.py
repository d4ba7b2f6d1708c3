"""Presence (SPEC §5 `presence`, §7 `GET /api/presence/`): frames to contacts, REST state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import connect as ws_connect

from chat.services import message_send, room_create
from conftest import authed_client, token_for
from testkit import eventually_async
from testkit.servers import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]


# --- helpers ---------------------------------------------------------------------
async def _next_output(sock, seconds: float) -> dict | None:
    """The next frame, or None after `seconds` (without cancelling the application)."""
    if await sock.communicator.receive_nothing(seconds):
        return None
    output = await sock.communicator.receive_output(1)
    assert output["type"] == "websocket.send", output
    return json.loads(output["text"])


async def next_presence(sock, within: float = 10) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while (remaining := deadline - loop.time()) > 0:
        frame = await _next_output(sock, remaining)
        if frame is not None and frame["type"] == "presence":
            return frame
    raise AssertionError("no presence frame arrived")


async def presence_frames_within(sock, seconds: float = 0.5) -> list[dict]:
    """Every presence frame the socket receives (or has queued) within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    frames = []
    while (remaining := deadline - loop.time()) > 0:
        frame = await _next_output(sock, remaining)
        if frame is None:
            break
        if frame["type"] == "presence":
            frames.append(frame)
    return frames


async def presence_for(user) -> dict:
    response = await sync_to_async(authed_client(user).get)("/api/presence/")
    assert response.status_code == 200, response.content
    return response.json()


async def wait_for_rest(user, predicate, within: float = 30) -> dict:
    async def matching() -> dict | None:
        body = await presence_for(user)
        return body if predicate(body) else None

    return await eventually_async(matching, within=within, interval=0.2, what="presence")


def online(user_id: int, state: bool) -> dict:
    return {"type": "presence", "user_id": user_id, "online": state}


@pytest.fixture
async def contacts(amake_user):
    """alice and bob have talked; carol is a stranger to both."""
    alice, bob, carol = [await amake_user(name) for name in ("alice", "bob", "carol")]
    await sync_to_async(message_send)(sender_id=bob.id, receiver_id=alice.id, content="hi")
    return alice, bob, carol


@pytest.fixture(params=["redis", "process memory"])
def store(request, settings) -> str:
    """Each one-process rule holds for both presence stores."""
    if request.param == "process memory":
        settings.REDIS_URL = ""  # the embedded demo's store; the layer stays on Redis
    return request.param


# --- one process ------------------------------------------------------------------
async def test_contact_hears_online_once_and_offline_when_the_last_tab_closes(
    contacts, open_socket, store
):
    alice, bob, carol = contacts
    bob_socket = await open_socket(token=token_for(bob))
    carol_socket = await open_socket(token=token_for(carol))
    assert (await presence_for(bob))["online"] == []

    alice_tab1 = await open_socket(token=token_for(alice))
    assert await next_presence(bob_socket) == online(alice.id, True)
    assert (await presence_for(bob))["online"] == [alice.id]

    alice_tab2 = await open_socket(token=token_for(alice))
    assert await presence_frames_within(bob_socket) == []

    await alice_tab1.communicator.disconnect()
    assert await presence_frames_within(bob_socket) == []
    assert (await presence_for(bob))["online"] == [alice.id]

    await alice_tab2.communicator.disconnect()
    assert await next_presence(bob_socket) == online(alice.id, False)
    assert (await presence_for(bob))["online"] == []
    assert await presence_frames_within(carol_socket, 0.1) == []


async def test_a_user_is_never_told_about_themselves(contacts, open_socket, store):
    alice, bob, _ = contacts
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    assert await next_presence(alice_socket) == online(bob.id, True)
    # bob may hear alice (she came online just before him), never himself
    assert all(frame["user_id"] == alice.id for frame in await presence_frames_within(bob_socket))


async def test_room_co_members_are_contacts(amake_user, open_socket, store):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    await sync_to_async(room_create)(creator_id=alice.id, name="ops", member_ids=[bob.id])
    bob_socket = await open_socket(token=token_for(bob))
    alice_socket = await open_socket(token=token_for(alice))
    assert await next_presence(bob_socket) == online(alice.id, True)
    await alice_socket.communicator.disconnect()
    assert await next_presence(bob_socket) == online(alice.id, False)


async def test_tabs_opening_and_closing_at_once_give_exactly_one_online_and_one_offline(
    contacts, open_socket, store
):
    alice, bob, _ = contacts
    bob_socket = await open_socket(token=token_for(bob))

    tabs = await asyncio.gather(*(open_socket(token=token_for(alice)) for _ in range(6)))
    first = await next_presence(bob_socket)
    assert [first, *await presence_frames_within(bob_socket)] == [online(alice.id, True)]

    await asyncio.gather(*(tab.communicator.disconnect() for tab in tabs))
    first = await next_presence(bob_socket)
    assert [first, *await presence_frames_within(bob_socket)] == [online(alice.id, False)]
    assert (await presence_for(bob))["online"] == []


async def test_heartbeats_keep_a_user_online_past_the_expiry(
    contacts, open_socket, settings, store
):
    # A socket expires 1.25 s after its last beat: slack enough for a loaded machine.
    settings.QW_HEARTBEAT_SECONDS = 0.5
    alice, bob, _ = contacts
    bob_socket = await open_socket(token=token_for(bob))
    await open_socket(token=token_for(alice))
    assert await next_presence(bob_socket) == online(alice.id, True)

    # Several expiry windows, with this process's sweeper running every interval.
    assert await presence_frames_within(bob_socket, 3.0) == []
    assert (await presence_for(bob))["online"] == [alice.id]


async def test_reconnect_after_token_expiry_close_does_not_flap_presence(
    contacts, open_socket, settings, store
):
    settings.QW_HEARTBEAT_SECONDS = 1
    alice, bob, _ = contacts
    bob_socket = await open_socket(token=token_for(bob))
    short_token = AccessToken.for_user(alice)
    # exp has one-second resolution; 3 s leaves room to connect on a loaded machine.
    short_token.set_exp(lifetime=timedelta(seconds=3))
    alice_socket = await open_socket(token=str(short_token))
    assert await next_presence(bob_socket) == online(alice.id, True)

    assert await alice_socket.close_code(timeout=6) == 4002
    await alice_socket.communicator.disconnect()  # what daphne sends after the close
    alice_again = await open_socket(token=token_for(alice))  # refresh and reconnect
    assert await presence_frames_within(bob_socket, 1.0) == []
    assert (await presence_for(bob))["online"] == [alice.id]

    # A client that does not come back goes offline, once.
    await alice_again.communicator.disconnect()
    first = await next_presence(bob_socket)
    assert [first, *await presence_frames_within(bob_socket, 1.0)] == [online(alice.id, False)]


# --- REST --------------------------------------------------------------------------
async def test_rest_lists_my_contacts_and_who_of_them_is_online(amake_user, open_socket, store):
    alice, bob, dave, carol = [await amake_user(name) for name in ("alice", "bob", "dave", "carol")]
    await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="hi")
    await sync_to_async(room_create)(creator_id=dave.id, name="ops", member_ids=[alice.id])
    await open_socket(token=token_for(bob))
    await open_socket(token=token_for(carol))  # online, but not alice's contact

    assert await presence_for(alice) == {
        "online": [bob.id],
        "contacts": [
            {"user_id": bob.id, "online": True},
            {"user_id": dave.id, "online": False},
        ],
    }
    assert await presence_for(carol) == {"online": [], "contacts": []}


async def test_rest_presence_needs_a_token(api_client):
    response = await sync_to_async(api_client.get)("/api/presence/")
    assert response.status_code == 401


async def test_presence_is_in_the_openapi_schema(make_user):
    user = await sync_to_async(make_user)("alice")
    response = await sync_to_async(authed_client(user).get)("/api/schema/?format=json")
    assert response.status_code == 200
    operation = json.loads(response.content)["paths"]["/api/presence/"]["get"]
    schema_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.endswith("/Presence")


# --- real server processes -------------------------------------------------------------
@pytest.fixture
async def server_process():
    """Another server process on the test database and Redis, heartbeat 1 s."""
    server = ServerProcess(QW_HEARTBEAT_SECONDS="1")
    await asyncio.to_thread(server.start, 30)
    yield server
    await asyncio.to_thread(server.stop)


@contextlib.asynccontextmanager
async def remote_socket(server, user):
    socket = await ws_connect(f"{server.ws_url}?token={token_for(user)}", open_timeout=10)
    try:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert hello["type"] == "authenticated"
        yield socket
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(socket.close(), 5)


@pytest.mark.slow
async def test_tabs_on_two_server_processes_count_together(contacts, open_socket, server_process):
    alice, bob, _ = contacts
    bob_socket = await open_socket(token=token_for(bob))
    async with remote_socket(server_process, alice) as remote_tab:
        assert await next_presence(bob_socket) == online(alice.id, True)
        local_tab = await open_socket(token=token_for(alice))
        await local_tab.communicator.disconnect()
        assert await presence_frames_within(bob_socket) == []
        assert (await presence_for(bob))["online"] == [alice.id]
        await remote_tab.close()
    assert await next_presence(bob_socket) == online(alice.id, False)
    assert (await presence_for(bob))["online"] == []


@pytest.mark.slow
async def test_users_of_a_killed_server_process_go_offline_after_the_expiry(
    contacts, open_socket, server_process, settings
):
    settings.QW_HEARTBEAT_SECONDS = 0.5  # this process sweeps for expired sockets this often
    alice, bob, _ = contacts
    bob_socket = await open_socket(token=token_for(bob))
    async with remote_socket(server_process, alice):
        assert await next_presence(bob_socket) == online(alice.id, True)
        assert (await presence_for(bob))["online"] == [alice.id]

        # SIGKILL: no disconnect runs, nothing is removed
        await asyncio.to_thread(server_process.kill)

        body = await wait_for_rest(bob, lambda body: body["online"] == [])
        assert body["contacts"] == [{"user_id": alice.id, "online": False}]
        # A live process noticed the expiry and told the contacts.
        assert await next_presence(bob_socket) == online(alice.id, False)


@pytest.mark.slow
async def test_sigterm_restart_close_and_reconnect_elsewhere_does_not_flap_presence(
    contacts, open_socket, server_process
):
    alice, bob, _ = contacts
    bob_socket = await open_socket(token=token_for(bob))
    async with remote_socket(server_process, alice) as remote_tab:
        assert await next_presence(bob_socket) == online(alice.id, True)
        server_process.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(remote_tab.wait_closed(), 10)
        assert remote_tab.close_code == 4012
    await open_socket(token=token_for(alice))  # reconnect to another node
    # a clean exit, not a kill
    assert await asyncio.to_thread(server_process.process.wait, 10) == 0
    assert await presence_frames_within(bob_socket, 1.0) == []
    assert (await presence_for(bob))["online"] == [alice.id]
