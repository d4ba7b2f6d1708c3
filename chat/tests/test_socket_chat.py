"""1:1 chat over the socket: delivery, acks, validation (SPEC §4–§6)."""

import pytest
from asgiref.sync import sync_to_async

from chat.models import ChatMessage
from conftest import token_for
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def message_count() -> int:
    return ChatMessage.objects.count()


@sync_to_async
def event_count() -> int:
    return Event.objects.count()


@pytest.fixture
async def pair(amake_user):
    return await amake_user("alice"), await amake_user("bob")


async def test_message_reaches_every_receiver_socket_and_sender_other_tabs(pair, open_socket):
    alice, bob = pair
    alice_tab1 = await open_socket(token=token_for(alice))
    alice_tab2 = await open_socket(token=token_for(alice))
    bob_tab1 = await open_socket(token=token_for(bob))
    bob_tab2 = await open_socket(token=token_for(bob))

    await alice_tab1.send(
        {
            "type": "chat_message",
            "receiver_id": bob.id,
            "content": "  hello bob \n",
            "client_msg_id": "m-1",
        }
    )
    ack = await alice_tab1.receive_type("message_sent")
    assert ack["client_msg_id"] == "m-1"
    assert ack["duplicate"] is False
    assert ack["timestamp"].endswith("Z")

    for socket in (bob_tab1, bob_tab2, alice_tab2, alice_tab1):
        frame = await socket.receive_type("chat_message")
        assert frame["message_id"] == ack["message_id"]
        assert frame["sender_id"] == alice.id
        assert frame["receiver_id"] == bob.id
        assert frame["content"] == "hello bob"  # trimmed
        assert frame["client_msg_id"] == "m-1"
        assert frame["seq"] == 1
    stored = await sync_to_async(ChatMessage.objects.get)(id=ack["message_id"])
    assert (stored.sender_id, stored.receiver_id, stored.content) == (alice.id, bob.id, "hello bob")


async def test_stranger_receives_nothing(pair, amake_user, open_socket):
    alice, bob = pair
    carol = await amake_user("carol")
    alice_socket = await open_socket(token=token_for(alice))
    carol_socket = await open_socket(token=token_for(carol))
    await open_socket(token=token_for(bob))
    await alice_socket.send({"type": "chat_message", "receiver_id": bob.id, "content": "private"})
    await alice_socket.receive_type("message_sent")
    await carol_socket.assert_nothing()


async def test_control_characters_are_removed(pair, open_socket):
    alice, bob = pair
    alice_socket = await open_socket(token=token_for(alice))
    await alice_socket.send(
        {"type": "chat_message", "receiver_id": bob.id, "content": "a\x00b\x07c\n\td\x1b"}
    )
    await alice_socket.receive_type("message_sent")
    frame = await alice_socket.receive_type("chat_message")
    assert frame["content"] == "abc\n\td"


@pytest.mark.parametrize(
    "frame, code",
    [
        ({"type": "chat_message", "content": "no target"}, "invalid_message"),
        ({"type": "chat_message", "receiver_id": "2", "content": "x"}, "invalid_message"),
        ({"type": "chat_message", "receiver_id": True, "content": "x"}, "invalid_message"),
        (
            {"type": "chat_message", "receiver_id": 1, "room_id": 1, "content": "x"},
            "invalid_message",
        ),
        ({"type": "chat_message", "receiver_id": 1}, "invalid_message"),
        ({"type": "chat_message", "receiver_id": 1, "content": 5}, "invalid_message"),
        ({"type": "chat_message", "receiver_id": 1, "content": "   \n\t "}, "invalid_message"),
        ({"type": "chat_message", "receiver_id": 1, "content": "\x00\x01"}, "invalid_message"),
        ({"type": "chat_message", "receiver_id": 1, "content": "x" * 10_001}, "too_large"),
        ({"type": "chat_message", "receiver_id": 1, "content": "é" * 5_200}, "too_large"),
        (
            {"type": "chat_message", "receiver_id": 1, "content": "x", "client_msg_id": ""},
            "invalid_message",
        ),
        (
            {"type": "chat_message", "receiver_id": 1, "content": "x", "client_msg_id": "c" * 65},
            "invalid_message",
        ),
        (
            {"type": "chat_message", "receiver_id": 1, "content": "x", "client_msg_id": 12},
            "invalid_message",
        ),
        (
            {"type": "chat_message", "receiver_id": 1, "content": "x", "client_msg_id": "a\x00b"},
            "invalid_message",
        ),
    ],
)
async def test_invalid_message_is_refused_and_nothing_is_stored(pair, open_socket, frame, code):
    alice, bob = pair
    frame = dict(frame)
    if frame.get("receiver_id") == 1 and type(frame["receiver_id"]) is int:
        frame["receiver_id"] = bob.id
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    await alice_socket.send(frame)
    error = await alice_socket.receive_type("error")
    assert error["code"] == code
    assert await message_count() == 0
    assert await event_count() == 0
    await bob_socket.assert_nothing()
    # the socket is still usable
    await alice_socket.send({"type": "ping"})
    await alice_socket.receive_type("pong")


async def test_error_carries_the_client_msg_id_as_ref(pair, open_socket):
    alice, _ = pair
    alice_socket = await open_socket(token=token_for(alice))
    await alice_socket.send(
        {"type": "chat_message", "receiver_id": 999_999, "content": "x", "client_msg_id": "ref-7"}
    )
    error = await alice_socket.receive_type("error")
    assert error == {
        "type": "error",
        "code": "not_found",
        "message": "no such receiver or room",
        "ref": "ref-7",
    }


async def test_exactly_10000_characters_is_accepted(pair, open_socket):
    alice, bob = pair
    alice_socket = await open_socket(token=token_for(alice))
    await alice_socket.send(
        {"type": "chat_message", "receiver_id": bob.id, "content": "x" * 10_000}
    )
    await alice_socket.receive_type("message_sent")
    assert await message_count() == 1


@pytest.mark.parametrize("receiver", ["unknown", "inactive"])
async def test_unknown_or_inactive_receiver_is_not_found(pair, amake_user, open_socket, receiver):
    alice, _ = pair
    if receiver == "inactive":
        target = (await amake_user("gone", is_active=False)).id
    else:
        target = 987_654
    alice_socket = await open_socket(token=token_for(alice))
    await alice_socket.send({"type": "chat_message", "receiver_id": target, "content": "hi"})
    error = await alice_socket.receive_type("error")
    assert error["code"] == "not_found"
    assert await message_count() == 0
    assert await event_count() == 0


async def test_rate_limit_refuses_over_the_limit_and_stores_nothing(pair, open_socket, settings):
    settings.QW_RATE_CHAT_PER_MIN = 3
    alice, bob = pair
    tab1 = await open_socket(token=token_for(alice))
    tab2 = await open_socket(token=token_for(alice))
    for n in range(2):
        await tab1.send({"type": "chat_message", "receiver_id": bob.id, "content": f"m{n}"})
        await tab1.receive_type("message_sent")
    await tab2.send({"type": "chat_message", "receiver_id": bob.id, "content": "m2"})
    await tab2.receive_type("message_sent")
    # the limit counts every connection of the user
    await tab1.send(
        {
            "type": "chat_message",
            "receiver_id": bob.id,
            "content": "one too many",
            "client_msg_id": "x",
        }
    )
    error = await tab1.receive_type("error")
    assert error["code"] == "rate_limited"
    assert error["ref"] == "x"
    assert 0 < error["retry_after"] <= 60
    assert await message_count() == 3


async def test_message_to_self_reaches_own_tabs_once(pair, open_socket):
    alice, _ = pair
    tab1 = await open_socket(token=token_for(alice))
    tab2 = await open_socket(token=token_for(alice))
    await tab1.send({"type": "chat_message", "receiver_id": alice.id, "content": "note to self"})
    await tab1.receive_type("message_sent")
    frame = await tab2.receive_type("chat_message")
    assert frame["seq"] == 1
    await tab2.assert_nothing()
