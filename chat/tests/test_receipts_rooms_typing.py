"""Receipts, rooms and typing over the socket (SPEC §4.6, §5)."""

import pytest
from asgiref.sync import sync_to_async

from chat.models import ChatMessage
from chat.services import message_send, room_create, room_remove_member
from conftest import token_for
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def trio(amake_user):
    return await amake_user("alice"), await amake_user("bob"), await amake_user("carol")


send = sync_to_async(message_send)


@sync_to_async
def message(message_id: int) -> ChatMessage:
    return ChatMessage.objects.get(id=message_id)


# --- receipts ------------------------------------------------------------------------
async def test_message_received_sets_delivered_and_tells_the_sender(trio, open_socket):
    alice, bob, _ = trio
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    sent = await send(sender_id=alice.id, receiver_id=bob.id, content="hi")
    await bob_socket.receive_type("chat_message")
    await alice_socket.receive_type("chat_message")
    await bob_socket.send({"type": "message_received", "message_id": sent.message_id})
    status = await alice_socket.receive_type("message_status")
    assert status["message_id"] == sent.message_id
    assert status["status"] == "delivered"
    assert status["by"] == bob.id
    assert status["seq"] == 2
    assert (await message(sent.message_id)).delivered_at is not None
    # a second receipt tells nobody anything new
    await bob_socket.send({"type": "message_received", "message_id": sent.message_id})
    await alice_socket.assert_nothing()


async def test_read_receipt_marks_earlier_messages_of_the_conversation(trio, open_socket):
    alice, bob, carol = trio
    first = await send(sender_id=alice.id, receiver_id=bob.id, content="1")
    second = await send(sender_id=alice.id, receiver_id=bob.id, content="2")
    other = await send(sender_id=carol.id, receiver_id=bob.id, content="not this one")
    third = await send(sender_id=alice.id, receiver_id=bob.id, content="3")
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    await bob_socket.send({"type": "read_receipt", "message_id": second.message_id})
    status = await alice_socket.receive_type("message_status")
    assert (status["message_id"], status["status"], status["by"]) == (
        second.message_id,
        "read",
        bob.id,
    )
    assert (await message(first.message_id)).read_at is not None
    assert (await message(second.message_id)).read_at is not None
    assert (await message(third.message_id)).read_at is None
    assert (await message(other.message_id)).read_at is None


@pytest.mark.parametrize("frame_type", ["message_received", "read_receipt"])
async def test_receipt_for_a_message_not_mine_is_not_found_and_changes_nothing(
    trio, open_socket, frame_type
):
    alice, bob, carol = trio
    sent = await send(sender_id=alice.id, receiver_id=bob.id, content="for bob")
    carol_socket = await open_socket(token=token_for(carol))
    alice_socket = await open_socket(token=token_for(alice))
    for message_id in (sent.message_id, 999_999):
        await carol_socket.send({"type": frame_type, "message_id": message_id})
        assert (await carol_socket.receive_type("error"))["code"] == "not_found"
    # nor can the sender mark their own message
    await alice_socket.send({"type": frame_type, "message_id": sent.message_id})
    assert (await alice_socket.receive_type("error"))["code"] == "not_found"
    stored = await message(sent.message_id)
    assert stored.delivered_at is None and stored.read_at is None


async def test_receipt_with_bad_message_id_is_invalid_message(trio, open_socket):
    alice, *_ = trio
    alice_socket = await open_socket(token=token_for(alice))
    await alice_socket.send({"type": "read_receipt", "message_id": "12"})
    assert (await alice_socket.receive_type("error"))["code"] == "invalid_message"


# --- rooms ---------------------------------------------------------------------------
async def test_room_message_reaches_every_member_with_their_own_seq(trio, open_socket):
    alice, bob, carol = trio
    room = await sync_to_async(room_create)(
        creator_id=alice.id, name="team", member_ids=[bob.id, carol.id]
    )
    await send(sender_id=bob.id, receiver_id=carol.id, content="carol has an older event")
    sockets = {user.username: await open_socket(token=token_for(user)) for user in trio}
    await sockets["carol"].send({"type": "resume", "last_seq": 1})
    await sockets["carol"].receive_type("resumed")
    await sockets["alice"].send(
        {"type": "chat_message", "room_id": room.id, "content": "hello team"}
    )
    await sockets["alice"].receive_type("message_sent")
    frames = {name: await socket.receive_type("chat_message") for name, socket in sockets.items()}
    assert {frame["room_id"] for frame in frames.values()} == {room.id}
    assert "receiver_id" not in frames["bob"]
    assert frames["alice"]["seq"] == 1
    assert frames["bob"]["seq"] == 2
    assert frames["carol"]["seq"] == 2


async def test_non_member_cannot_send_to_a_room(trio, open_socket):
    alice, bob, carol = trio
    room = await sync_to_async(room_create)(creator_id=alice.id, name="team", member_ids=[bob.id])
    carol_socket = await open_socket(token=token_for(carol))
    await carol_socket.send({"type": "chat_message", "room_id": room.id, "content": "let me in"})
    assert (await carol_socket.receive_type("error"))["code"] == "not_found"
    assert await sync_to_async(ChatMessage.objects.count)() == 0


async def test_removed_member_gets_nothing_sent_after_removal(trio, open_socket):
    alice, bob, carol = trio
    room = await sync_to_async(room_create)(
        creator_id=alice.id, name="team", member_ids=[bob.id, carol.id]
    )
    carol_socket = await open_socket(token=token_for(carol))
    await send(sender_id=alice.id, room_id=room.id, content="before")
    assert (await carol_socket.receive_type("chat_message"))["content"] == "before"
    await sync_to_async(room_remove_member)(room=room, user_id=carol.id)
    await send(sender_id=alice.id, room_id=room.id, content="after")
    await carol_socket.assert_nothing()
    carol_events = await sync_to_async(Event.objects.filter(user=carol).count)()
    assert carol_events == 1
    # and carol can no longer post there
    await carol_socket.send({"type": "chat_message", "room_id": room.id, "content": "hey"})
    assert (await carol_socket.receive_type("error"))["code"] == "not_found"


async def test_room_read_receipt_tells_each_sender(trio, open_socket):
    alice, bob, carol = trio
    room = await sync_to_async(room_create)(
        creator_id=alice.id, name="team", member_ids=[bob.id, carol.id]
    )
    from_alice = await send(sender_id=alice.id, room_id=room.id, content="a")
    from_bob = await send(sender_id=bob.id, room_id=room.id, content="b")
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    carol_socket = await open_socket(token=token_for(carol))
    await carol_socket.send({"type": "read_receipt", "message_id": from_bob.message_id})
    to_alice = await alice_socket.receive_type("message_status")
    to_bob = await bob_socket.receive_type("message_status")
    assert (to_alice["message_id"], to_alice["by"]) == (from_alice.message_id, carol.id)
    assert (to_bob["message_id"], to_bob["by"]) == (from_bob.message_id, carol.id)


# --- typing ----------------------------------------------------------------------------
async def test_typing_is_relayed_to_the_receiver_only_and_not_stored(trio, open_socket):
    alice, bob, carol = trio
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    carol_socket = await open_socket(token=token_for(carol))
    await alice_socket.send({"type": "typing", "receiver_id": bob.id})
    indicator = await bob_socket.receive_type("typing_indicator")
    assert indicator == {
        "type": "typing_indicator",
        "sender_id": alice.id,
        "receiver_id": bob.id,
        "is_typing": True,
    }
    await alice_socket.send({"type": "typing", "receiver_id": bob.id, "is_typing": False})
    assert (await bob_socket.receive_type("typing_indicator"))["is_typing"] is False
    await carol_socket.assert_nothing()
    await alice_socket.assert_nothing()
    assert await sync_to_async(Event.objects.count)() == 0


async def test_typing_in_a_room_reaches_the_other_members(trio, open_socket):
    alice, bob, carol = trio
    room = await sync_to_async(room_create)(creator_id=alice.id, name="team", member_ids=[bob.id])
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    carol_socket = await open_socket(token=token_for(carol))
    await alice_socket.send({"type": "typing", "room_id": room.id})
    indicator = await bob_socket.receive_type("typing_indicator")
    assert (indicator["room_id"], indicator["sender_id"]) == (room.id, alice.id)
    await alice_socket.assert_nothing()
    await carol_socket.assert_nothing()
    await carol_socket.send({"type": "typing", "room_id": room.id})
    assert (await carol_socket.receive_type("error"))["code"] == "not_found"


async def test_typing_is_limited_to_five_per_second_per_connection(trio, open_socket):
    alice, bob, _ = trio
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    for _ in range(6):
        await alice_socket.send({"type": "typing", "receiver_id": bob.id})
    error = await alice_socket.receive_type("error")
    assert error["code"] == "rate_limited"
    assert 0 < error["retry_after"] <= 1
    assert len(await bob_socket.receive_all("typing_indicator", 5)) == 5
    await bob_socket.assert_nothing()


async def test_typing_with_bad_flag_is_invalid(trio, open_socket):
    alice, bob, _ = trio
    alice_socket = await open_socket(token=token_for(alice))
    await alice_socket.send({"type": "typing", "receiver_id": bob.id, "is_typing": "yes"})
    assert (await alice_socket.receive_type("error"))["code"] == "invalid_message"


async def test_removed_member_loses_the_room_subscription(trio, open_socket):
    alice, bob, _ = trio
    room = await sync_to_async(room_create)(creator_id=alice.id, name="team", member_ids=[bob.id])
    bob_socket = await open_socket(token=token_for(bob))
    await bob_socket.send({"type": "subscribe", "channel": f"room:{room.id}"})
    assert await bob_socket.receive_type("subscribed") == {
        "type": "subscribed",
        "channel": f"room:{room.id}",
    }
    await sync_to_async(room_remove_member)(room=room, user_id=bob.id)
    assert await bob_socket.receive_type("unsubscribed") == {
        "type": "unsubscribed",
        "channel": f"room:{room.id}",
    }
    await bob_socket.send({"type": "subscribe", "channel": f"room:{room.id}"})
    assert (await bob_socket.receive_type("error"))["code"] == "forbidden"
