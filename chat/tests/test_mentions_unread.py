"""Mentions in rooms and unread on every device (SPEC §11)."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.mentions import mentioned_usernames
from chat.models import MessageMention
from chat.services import message_mark_read, message_send, room_create
from conftest import authed_client, token_for
from notifications.models import Notification
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
UNREAD = "/api/chat/unread/"


@pytest.fixture
def team(make_user):
    alice, bob, carol, dave = (make_user(name) for name in ("alice", "bob", "carol", "dave"))
    room = room_create(creator_id=alice.id, name="launch", member_ids=[bob.id, carol.id])
    return alice, bob, carol, dave, room


def send_room(sender, room, content: str) -> int:
    result = message_send(sender_id=sender.id, room_id=room.id, content=content)
    assert result.ok
    return result.message_id


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("@bob can you check?", {"bob"}),
        ("thanks @bob. and @carol-", {"bob", "carol"}),
        ("mail bob@example.com", set()),
        ("(@bob)", {"bob"}),
        ("@ alone", set()),
        ("no at all", set()),
    ],
)
def test_mentioned_usernames(text, names):
    assert mentioned_usernames(text) == names


def test_a_mention_of_a_member_is_in_the_payload_and_notifies_them(team):
    alice, bob, carol, dave, room = team

    message_id = send_room(alice, room, "@bob please review, @dave too, and me @alice")

    payload = Event.objects.filter(user=carol, type="chat_message").get().payload
    assert payload["mentions"] == [bob.id]  # dave is no member, alice is the sender
    [notification] = Notification.objects.filter(notification_type="mention")
    assert (notification.user_id, notification.title, notification.message, notification.link) == (
        bob.id,
        "alice mentioned you in launch",
        "@bob please review, @dave too, and me @alice",
        f"/chat/?room={room.id}#message-{message_id}",
    )
    assert (
        Event.objects.filter(user=bob, type="notification").get().payload["notification_type"]
        == "mention"
    )
    assert not Event.objects.filter(user__in=[alice, dave], type="notification").exists()
    history = authed_client(carol).get("/api/chat/messages/", {"room": room.id}).json()["results"]
    assert history[0]["mentions"] == [bob.id]


def test_no_mention_in_one_to_one_messages(team):
    alice, bob, *_ = team
    message_send(sender_id=alice.id, receiver_id=bob.id, content="@bob hi")
    assert Event.objects.get(user=bob, type="chat_message").payload["mentions"] == []
    assert not Notification.objects.exists()


async def test_a_mentioned_member_is_notified_live(team, open_socket):
    alice, bob, _, _, room = team
    socket = await open_socket(token=token_for(bob))
    await sync_to_async(send_room)(alice, room, "@bob now")
    message = await socket.receive_type("chat_message")
    notification = await socket.receive_type("notification")
    assert message["mentions"] == [bob.id]
    assert notification["notification_type"] == "mention"
    assert notification["seq"] == message["seq"] + 1


def test_an_edit_that_adds_a_mention_notifies_only_the_new_one(team):
    alice, bob, carol, _, room = team
    message_id = send_room(alice, room, "@bob look")
    response = authed_client(alice).patch(
        f"/api/chat/messages/{message_id}/", {"content": "@carol look"}, format="json"
    )
    assert response.json()["mentions"] == [carol.id]
    assert Event.objects.filter(user=bob, type="message_updated").get().payload["mentions"] == [
        carol.id
    ]
    assert sorted(Notification.objects.values_list("user_id", flat=True)) == [bob.id, carol.id]
    assert list(MessageMention.objects.values_list("user_id", flat=True)) == [carol.id]


def test_deleting_a_message_removes_its_mention_notifications(team):
    alice, bob, _, _, room = team
    message_id = send_room(alice, room, "@bob secret")
    authed_client(alice).delete(f"/api/chat/messages/{message_id}/")
    assert not Notification.objects.exists()
    assert authed_client(bob).get(UNREAD).json() == {"total": 0, "mentions": 0}


def test_unread_counts_messages_and_mentions_until_read(team):
    alice, bob, carol, _, room = team
    send_room(alice, room, "hello all")
    mention = send_room(carol, room, "@bob over to you")
    message_send(sender_id=carol.id, receiver_id=bob.id, content="psst")
    last = send_room(alice, room, "later")

    assert authed_client(bob).get(UNREAD).json() == {"total": 4, "mentions": 1}
    message_mark_read(user_id=bob.id, message_id=mention)
    assert authed_client(bob).get(UNREAD).json() == {"total": 2, "mentions": 0}
    message_mark_read(user_id=bob.id, message_id=last)
    assert authed_client(bob).get(UNREAD).json() == {"total": 1, "mentions": 0}
    # carol's room message is unread for alice; its mention is not hers
    assert authed_client(alice).get(UNREAD).json() == {"total": 1, "mentions": 0}


def test_unread_costs_the_same_at_no_and_at_many_messages(team):
    alice, bob, carol, _, room = team
    client = authed_client(bob)
    counts = []
    for burst in (0, 200):
        for n in range(burst):
            send_room(alice if n % 2 else carol, room, f"@bob {n}" if n % 3 == 0 else f"m{n}")
        with CaptureQueriesContext(connection) as queries:
            body = client.get(UNREAD).json()
        counts.append(len(queries))
    assert body == {"total": 200, "mentions": 67}
    # the user lookup, then one statement of the two counts
    assert counts == [2, 2]


async def test_reading_on_one_device_clears_the_badge_on_the_others_live(team, open_socket):
    alice, bob, carol, _, room = team
    direct = (
        await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="hi")
    ).message_id
    in_room = await sync_to_async(send_room)(carol, room, "@bob room news")
    laptop = await open_socket(token=token_for(bob))
    phone = await open_socket(token=token_for(bob))
    client = authed_client(bob)
    assert (await sync_to_async(client.get)(UNREAD)).json() == {"total": 2, "mentions": 1}

    # the phone reads both conversations: one over REST, one over its socket
    await sync_to_async(client.post)(f"/api/chat/messages/{direct}/read/")
    await phone.send({"type": "read_receipt", "message_id": in_room})

    for socket in (laptop, phone):
        first = await socket.receive_type("conversation_read")
        second = await socket.receive_type("conversation_read")
        assert {k: v for k, v in first.items() if k != "seq"} == {
            "type": "conversation_read",
            "with": alice.id,
            "last_read_message_id": direct,
        }
        assert {k: v for k, v in second.items() if k != "seq"} == {
            "type": "conversation_read",
            "room": room.id,
            "last_read_message_id": in_room,
        }
        assert second["seq"] == first["seq"] + 1
    assert (await sync_to_async(client.get)(UNREAD)).json() == {"total": 0, "mentions": 0}
    # reading again changes nothing and tells nobody
    await sync_to_async(client.post)(f"/api/chat/messages/{direct}/read/")
    count = await sync_to_async(Event.objects.filter(user=bob, type="conversation_read").count)()
    assert count == 2


def test_unread_needs_a_token(api_client):
    assert api_client.get(UNREAD).status_code == 401


def test_usernames_with_dots_are_mentioned(make_user):
    alice = make_user("alice")
    ann = get_user_model().objects.create_user(username="ann.lee", password="x" * 12)
    room = room_create(creator_id=alice.id, name="r", member_ids=[ann.id])
    send_room(alice, room, "ping @ann.lee.")
    assert Event.objects.get(user=ann, type="chat_message").payload["mentions"] == [ann.id]
