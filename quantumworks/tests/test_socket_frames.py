"""Malformed frames get an error and keep the socket open (SPEC §5)."""

import pytest

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
