"""Malformed frames get an error and keep the socket open (SPEC §5)."""

from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def socket(amake_user, open_socket):
    user = await amake_user("alice")
    return await open_socket(token=token_for(user))


@pytest.mark.parametrize("frame_type", ["ping", "heartbeat"])
async def test_ping_and_heartbeat_get_pong(socket, frame_type):
    await socket.send({"type": frame_type})
    pong = await socket.receive_type("pong")
    assert pong["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    "raw, code",
    [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('"text"', "invalid_message"),
        ('{"no_type": 1}', "invalid_message"),
        ('{"type": 7}', "invalid_message"),
        ('{"type": "launch_rockets"}', "unknown_type"),
        ('{"type": "resume"}', "invalid_message"),
        ('{"type": "resume", "last_seq": "7"}', "invalid_message"),
    ],
)
async def test_bad_frame_gets_error_and_socket_stays_open(socket, raw, code):
    await socket.send(raw)
    error = await socket.receive_type("error")
    assert error["code"] == code
    assert error["message"]
    await socket.send({"type": "ping"})
    await socket.receive_type("pong")


async def test_error_never_echoes_internal_text(socket):
    await socket.send('{"type": "launch_rockets", "x": "Traceback"}')
    error = await socket.receive_type("error")
    assert error == {
        "type": "error",
        "code": "unknown_type",
        "message": "unknown frame type",
        "ref": None,
    }


async def test_heartbeat_frames_arrive_every_interval(amake_user, open_socket, settings):
    settings.QW_HEARTBEAT_SECONDS = 0.3
    user = await amake_user("bob")
    socket = await open_socket(token=token_for(user))
    assert socket.hello["heartbeat_interval"] == 0.3
    first = await socket.receive(timeout=2)
    second = await socket.receive(timeout=2)
    assert first["type"] == second["type"] == "heartbeat"


async def test_binary_frame_is_refused_as_invalid_json(socket):
    await socket.communicator.send_input({"type": "websocket.receive", "bytes": b"\x00\x01"})
    error = await socket.receive_type("error")
    assert (error["code"], error["message"]) == ("invalid_json", "frames must be JSON text")
    await socket.send({"type": "ping"})
    await socket.receive_type("pong")


async def test_negative_resume_point_is_invalid(socket):
    await socket.send({"type": "resume", "last_seq": -1})
    assert (await socket.receive_type("error"))["code"] == "invalid_message"


async def test_resume_point_ahead_of_the_inbox_requires_resync(socket):
    """A client holding a seq this server never issued (e.g. another database)."""
    await socket.send({"type": "resume", "last_seq": 50})
    assert await socket.receive() == {"type": "resync_required"}


async def test_authenticate_with_a_bad_token_closes_4001(socket):
    await socket.send({"type": "authenticate", "token": "garbage"})
    assert await socket.close_code() == 4001


async def test_authenticate_with_another_users_token_is_forbidden(amake_user, socket):
    other = await amake_user("mallory")
    await socket.send({"type": "authenticate", "token": token_for(other)})
    error = await socket.receive_type("error")
    assert error["code"] == "forbidden"
    await socket.send({"type": "ping"})
    await socket.receive_type("pong")


@pytest.mark.parametrize(
    "frame",
    [{"type": "subscribe"}, {"type": "subscribe", "channel": 5}, {"type": "unsubscribe"}],
)
async def test_subscription_frames_without_a_channel_are_invalid(socket, frame):
    await socket.send(frame)
    assert (await socket.receive_type("error"))["code"] == "invalid_message"


@pytest.mark.parametrize("channel", ["task:abc", "user:1", "room:", "broadcast", "task:1:2"])
async def test_malformed_channels_are_forbidden(socket, channel):
    await socket.send({"type": "subscribe", "channel": channel})
    error = await socket.receive_type("error")
    assert error["code"] == "forbidden"


@pytest.mark.parametrize("channel", ["task:²", "room:①", "project:١٢", "task:" + "9" * 19])
async def test_non_ascii_digit_and_huge_channel_ids_are_forbidden(socket, channel):
    await socket.send({"type": "subscribe", "channel": channel})
    error = await socket.receive_type("error")
    assert (error["code"], error["ref"]) == ("forbidden", None)
    # unsubscribe is idempotent: an unknown channel is simply not subscribed
    await socket.send({"type": "unsubscribe", "channel": channel})
    assert await socket.receive_type("unsubscribed") == {"type": "unsubscribed", "channel": channel}


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message_received", "message_id": 2**64 - 1},
        {"type": "read_receipt", "message_id": -(2**63)},
        {"type": "resume", "last_seq": 2**63},
        {"type": "chat_message", "receiver_id": 2**64 - 1, "content": "hi"},
        {"type": "typing", "room_id": 2**63},
    ],
)
async def test_ids_beyond_bigint_are_invalid(socket, frame):
    await socket.send(frame)
    assert (await socket.receive_type("error"))["code"] == "invalid_message"
    await socket.send({"type": "ping"})
    await socket.receive_type("pong")


@pytest.mark.parametrize("last_seq", ["١", "1_0", "99999999999999999999", "-1", " 1"])
async def test_odd_last_seq_in_the_query_is_ignored(amake_user, open_socket, last_seq):
    from realtime.outbox import record_event

    user = await amake_user("alice")

    @sync_to_async
    def two_events():
        with transaction.atomic():
            for n in range(2):
                record_event(type="notification", payload={"n": n}, user_ids=[user.id])

    await two_events()
    socket = await open_socket(token=token_for(user), query=f"last_seq={quote(last_seq)}")
    assert socket.hello["last_seq"] == 2
    await socket.send({"type": "ping"})
    assert (await socket.receive())["type"] == "pong"  # no replay came first
