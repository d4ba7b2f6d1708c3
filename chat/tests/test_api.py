"""Chat over REST (SPEC §7): conversations, history, sending, read receipts."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from chat.models import ChatMessage
from chat.services import message_mark_read, message_send, messages_hide, room_create
from conftest import authed_client, token_for
from notifications.models import PendingDelivery
from realtime import redis_client
from realtime.models import Event
from testkit.infra import free_port

CONVERSATIONS = "/api/chat/conversations/"
MESSAGES = "/api/chat/messages/"


def read_url(message_id: int) -> str:
    return f"/api/chat/messages/{message_id}/read/"


def send(sender, receiver=None, room=None, content="hi", **extra) -> int:
    result = message_send(
        sender_id=sender.id,
        receiver_id=receiver.id if receiver else None,
        room_id=room.id if room else None,
        content=content,
        **extra,
    )
    assert result.ok
    return result.message_id


async def apost(user, url: str, data: dict | None = None):
    return await sync_to_async(authed_client(user).post)(url, data, format="json")


async def aget(user, url: str, params: dict | None = None):
    return await sync_to_async(authed_client(user).get)(url, params)


@pytest.fixture
def trio(make_user):
    return make_user("alice"), make_user("bob"), make_user("carol")


# --- conversations -------------------------------------------------------------
@pytest.mark.django_db
def test_conversations_list_counterparts_and_rooms_newest_first_with_unread(trio):
    alice, bob, carol = trio
    room = room_create(creator_id=carol.id, name="team", member_ids=[alice.id, bob.id])
    first = send(bob, alice, content="one")
    send(bob, alice, content="two")
    message_mark_read(user_id=alice.id, message_id=first)
    send(alice, carol, content="to carol")
    send(alice, room=room, content="mine")  # my own room messages are never unread
    room_last = send(bob, room=room, content="room news")
    hidden = send(carol, alice, content="moderated")
    messages_hide(message_ids=[hidden])

    response = authed_client(alice).get(CONVERSATIONS)

    assert response.status_code == 200
    body = response.json()
    assert [(c["type"], c["user"], c["room"]) for c in body] == [
        ("room", None, {"id": room.id, "name": "team"}),
        ("direct", {"id": carol.id, "username": "carol"}, None),
        ("direct", {"id": bob.id, "username": "bob"}, None),
    ]
    assert [c["unread_count"] for c in body] == [1, 0, 1]
    assert [c["last_message"]["content"] for c in body] == ["room news", "to carol", "two"]
    stored = ChatMessage.objects.get(id=room_last)
    assert body[0]["last_message"] == {
        "message_id": room_last,
        "sender_id": bob.id,
        "receiver_id": None,
        "room_id": room.id,
        "content": "room news",
        "client_msg_id": None,
        "timestamp": stored.created_at.isoformat().replace("+00:00", "Z"),
        "delivered_at": None,
        "read_at": None,
        "edited_at": None,
        "attachments": [],
        "mentions": [],
    }


@pytest.mark.django_db
def test_room_without_messages_is_listed_without_last_message(trio):
    alice, bob, _ = trio
    send(bob, alice)
    room = room_create(creator_id=alice.id, name="quiet")

    body = authed_client(alice).get(CONVERSATIONS).json()

    assert body[0] == {
        "type": "room",
        "user": None,
        "room": {"id": room.id, "name": "quiet"},
        "last_message": None,
        "unread_count": 0,
        "muted": False,
    }
    assert body[1]["user"]["id"] == bob.id


@pytest.mark.django_db
def test_conversation_whose_messages_are_all_hidden_is_not_listed(trio):
    alice, bob, _ = trio
    messages_hide(message_ids=[send(bob, alice)])

    assert authed_client(alice).get(CONVERSATIONS).json() == []


@pytest.mark.django_db
def test_reading_a_room_message_over_rest_clears_that_rooms_unread_count(trio):
    alice, bob, carol = trio
    room = room_create(creator_id=alice.id, name="team", member_ids=[bob.id, carol.id])
    send(bob, room=room)
    middle = send(carol, room=room)
    send(bob, room=room)
    client = authed_client(alice)

    assert client.post(read_url(middle)).status_code == 200

    assert client.get(CONVERSATIONS).json()[0]["unread_count"] == 1


def _conversations_for(user, others, rooms_to_make: int) -> None:
    for other in others:
        send(other, user)
        send(user, other)
    for index in range(rooms_to_make):
        room = room_create(creator_id=user.id, name=f"room {index}", member_ids=[others[0].id])
        send(others[0], room=room)


@pytest.mark.django_db
def test_conversations_query_count_does_not_grow_with_conversations(make_user):
    few, many = make_user("few"), make_user("many")
    # No passwords: hashing ten of them would dominate the test's time.
    others = get_user_model().objects.bulk_create(
        get_user_model()(username=f"other{n}") for n in range(10)
    )
    _conversations_for(few, others[:1], rooms_to_make=1)
    _conversations_for(many, others, rooms_to_make=10)
    counts = {}
    for user, expected in ((few, 2), (many, 20)):
        client = authed_client(user)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(CONVERSATIONS)
        assert len(response.json()) == expected
        counts[expected] = len(queries)

    # the user lookup, one read of the conversation state (with the last messages),
    # then the last messages' attachments and mentions (SPEC §11), one query each,
    # and the user's mutes (SPEC §10)
    assert counts == {2: 5, 20: 5}


def test_conversations_need_a_token(api_client):
    assert api_client.get(CONVERSATIONS).status_code == 401


# --- history -------------------------------------------------------------------
@pytest.mark.django_db
def test_history_walks_every_message_newest_first_without_gaps_or_duplicates(trio):
    alice, bob, carol = trio
    start = timezone.now()
    ChatMessage.objects.bulk_create(
        ChatMessage(
            sender=alice if n % 2 else bob,
            receiver=bob if n % 2 else alice,
            content=f"m{n}",
            created_at=start + timedelta(seconds=n),
        )
        for n in range(120)
    )
    send(carol, alice, content="another conversation")
    client = authed_client(alice)

    seen, url, pages = [], MESSAGES + f"?with={bob.id}", 0
    while url:
        page = client.get(url).json()
        assert set(page) == {"next", "previous", "results"}
        seen += [message["content"] for message in page["results"]]
        url, pages = page["next"], pages + 1

    assert seen == [f"m{n}" for n in reversed(range(120))]
    assert pages == 3


@pytest.mark.django_db
def test_history_previous_link_returns_to_the_newer_page(trio):
    alice, bob, _ = trio
    for n in range(5):
        send(alice, bob, content=f"m{n}")
    client = authed_client(bob)

    first = client.get(MESSAGES, {"with": alice.id, "page_size": 2}).json()
    second = client.get(first["next"]).json()
    back = client.get(second["previous"]).json()

    assert first["previous"] is None
    assert [m["content"] for m in second["results"]] == ["m2", "m1"]
    assert back["results"] == first["results"]


@pytest.mark.django_db
def test_room_history_is_the_rooms_visible_messages(trio):
    alice, bob, carol = trio
    room = room_create(creator_id=alice.id, name="team", member_ids=[bob.id])
    send(alice, room=room, content="hello room")
    messages_hide(message_ids=[send(bob, room=room, content="spam")])
    send(bob, carol, content="elsewhere")

    page = authed_client(bob).get(MESSAGES, {"room": room.id}).json()

    assert [(m["content"], m["room_id"], m["receiver_id"]) for m in page["results"]] == [
        ("hello room", room.id, None)
    ]


@pytest.mark.django_db
def test_hidden_messages_are_absent_from_direct_history(trio):
    alice, bob, _ = trio
    send(alice, bob, content="kept")
    messages_hide(message_ids=[send(bob, alice, content="removed by a moderator")])

    page = authed_client(alice).get(MESSAGES, {"with": bob.id}).json()

    assert [m["content"] for m in page["results"]] == ["kept"]


@pytest.mark.django_db
def test_history_with_a_user_never_written_to_is_an_empty_page(trio):
    alice, bob, carol = trio
    send(bob, carol)

    response = authed_client(alice).get(MESSAGES, {"with": bob.id})

    assert response.status_code == 200
    assert response.json() == {"next": None, "previous": None, "results": []}


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"with": 987654321}, {"room": 987654321}, "foreign room"])
def test_history_of_an_unknown_user_or_a_foreign_room_is_404(trio, params):
    alice, bob, carol = trio
    if params == "foreign room":
        room = room_create(creator_id=bob.id, name="private", member_ids=[carol.id])
        send(bob, room=room)
        params = {"room": room.id}

    response = authed_client(alice).get(MESSAGES, params)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, body",
    [
        ({}, {"non_field_errors": ["Give exactly one of 'with' or 'room'."]}),
        ({"with": 1, "room": 1}, {"non_field_errors": ["Give exactly one of 'with' or 'room'."]}),
        ({"with": "bob"}, {"with": ["A valid integer is required."]}),
        ({"room": "0"}, {"room": ["Ensure this value is greater than or equal to 1."]}),
    ],
)
def test_history_needs_exactly_one_valid_target(trio, params, body):
    response = authed_client(trio[0]).get(MESSAGES, params)

    assert response.status_code == 400
    assert response.json() == body


# --- sending -------------------------------------------------------------------
pytest_socket = pytest.mark.django_db(transaction=True)


@pytest_socket
async def test_rest_send_reaches_receiver_and_sender_sockets(amake_user, open_socket):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))

    response = await apost(
        alice, MESSAGES, {"receiver_id": bob.id, "content": " hi bob ", "client_msg_id": "r-1"}
    )

    assert response.status_code == 201
    sent = response.json()
    assert set(sent) == {"message_id", "client_msg_id", "timestamp", "duplicate"}
    assert (sent["client_msg_id"], sent["duplicate"]) == ("r-1", False)
    assert sent["timestamp"].endswith("Z")
    for socket in (bob_socket, alice_socket):
        frame = await socket.receive_type("chat_message")
        assert frame == {
            "type": "chat_message",
            "seq": 1,
            "message_id": sent["message_id"],
            "sender_id": alice.id,
            "receiver_id": bob.id,
            "content": "hi bob",
            "timestamp": sent["timestamp"],
            "client_msg_id": "r-1",
            "attachments": [],
            "mentions": [],
        }


@pytest_socket
async def test_rest_resend_is_acknowledged_as_duplicate_and_delivered_once(amake_user, open_socket):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    bob_socket = await open_socket(token=token_for(bob))
    message = {"receiver_id": bob.id, "content": "once", "client_msg_id": "same-id"}

    first = await apost(alice, MESSAGES, message)
    await bob_socket.receive_type("chat_message")
    again = await apost(alice, MESSAGES, message)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {**first.json(), "duplicate": True}
    await bob_socket.assert_nothing()
    assert await sync_to_async(ChatMessage.objects.filter(sender=alice).count)() == 1


@pytest_socket
async def test_rest_send_to_a_room_reaches_every_member(amake_user, open_socket):
    alice, bob, carol = [await amake_user(name) for name in ("alice", "bob", "carol")]
    room = await sync_to_async(room_create)(
        creator_id=alice.id, name="team", member_ids=[bob.id, carol.id]
    )
    sockets = [await open_socket(token=token_for(user)) for user in (alice, bob, carol)]

    response = await apost(bob, MESSAGES, {"room_id": room.id, "content": "standup?"})

    assert response.status_code == 201
    for socket in sockets:
        frame = await socket.receive_type("chat_message")
        assert (frame["room_id"], frame["sender_id"], frame["content"]) == (
            room.id,
            bob.id,
            "standup?",
        )


BOB = object()  # replaced by bob's id
TOO_LARGE = {"content": ["Ensure this field has no more than 10,000 characters and 10 KiB."]}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, body",
    [
        ({}, {"content": ["This field is required."]}),
        (
            {"content": "hi"},
            {"non_field_errors": ["Give exactly one of 'receiver_id' or 'room_id'."]},
        ),
        (
            {"receiver_id": BOB, "room_id": 1, "content": "hi"},
            {"non_field_errors": ["Give exactly one of 'receiver_id' or 'room_id'."]},
        ),
        (
            {"receiver_id": "bob", "content": "hi"},
            {"receiver_id": ["A valid integer is required."]},
        ),
        (
            {"receiver_id": BOB, "content": " \n\x00\t "},
            {"content": ["This field may not be blank."]},
        ),
        ({"receiver_id": BOB, "content": 42}, {"content": ["Not a valid string."]}),
        ({"receiver_id": BOB, "content": None}, {"content": ["This field may not be null."]}),
        ({"receiver_id": BOB, "content": "x" * 10_001}, TOO_LARGE),
        ({"receiver_id": BOB, "content": "é" * 6_000}, TOO_LARGE),  # 12,000 bytes
        (
            {"receiver_id": BOB, "content": "hi", "client_msg_id": "x" * 65},
            {"client_msg_id": ["Ensure this field has no more than 64 characters."]},
        ),
        (
            {"receiver_id": BOB, "content": "hi", "client_msg_id": ""},
            {"client_msg_id": ["This field may not be blank."]},
        ),
        (
            {"receiver_id": BOB, "content": "hi", "client_msg_id": 7},
            {"client_msg_id": ["Not a valid string."]},
        ),
    ],
)
def test_bad_send_gets_exact_400_and_stores_nothing(trio, payload, body):
    alice, bob, _ = trio
    payload = {key: bob.id if value is BOB else value for key, value in payload.items()}

    response = authed_client(alice).post(MESSAGES, payload, format="json")

    assert response.status_code == 400
    assert response.json() == body
    assert not ChatMessage.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.django_db
def test_rest_send_cleans_content_like_the_socket(trio):
    alice, bob, _ = trio

    response = authed_client(alice).post(
        MESSAGES, {"receiver_id": bob.id, "content": "  a\x00b\x07c\n\td\x1b  "}, format="json"
    )

    assert response.status_code == 201
    assert ChatMessage.objects.get(id=response.json()["message_id"]).content == "abc\n\td"


@pytest.mark.django_db
@pytest.mark.parametrize("target", ["unknown user", "inactive user", "foreign room"])
def test_rest_send_to_an_unreachable_target_is_404_and_stores_nothing(trio, make_user, target):
    alice, bob, carol = trio
    if target == "unknown user":
        payload = {"receiver_id": 987654321}
    elif target == "inactive user":
        payload = {"receiver_id": make_user("gone", is_active=False).id}
    else:
        payload = {"room_id": room_create(creator_id=bob.id, name="x", member_ids=[carol.id]).id}

    response = authed_client(alice).post(MESSAGES, {**payload, "content": "hi"}, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert not ChatMessage.objects.exists()


@pytest.mark.django_db
def test_rest_send_over_the_rate_limit_is_429_with_retry_after_and_stores_nothing(trio, settings):
    settings.QW_RATE_CHAT_PER_MIN = 2
    alice, bob, _ = trio
    client = authed_client(alice)
    for n in range(2):
        payload = {"receiver_id": bob.id, "content": f"m{n}"}
        assert client.post(MESSAGES, payload, format="json").status_code == 201

    response = client.post(
        MESSAGES, {"receiver_id": bob.id, "content": "one too many"}, format="json"
    )

    assert response.status_code == 429
    body = response.json()
    assert set(body) == {"detail", "retry_after"}
    assert 0 < body["retry_after"] <= 60
    assert 1 <= int(response["Retry-After"]) <= 60
    assert ChatMessage.objects.filter(sender=alice).count() == 2


@pytest.mark.django_db
def test_rest_send_with_the_rate_limits_redis_down_is_stored_and_counted(
    trio, settings, monkeypatch
):
    # Nothing listens there; the channel layer's Redis stays up.
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(redis_client, "_sync_client", None)
    monkeypatch.setattr(redis_client, "_sync_scripts", {})
    labels = {"kind": "redis", "operation": "chat rate limit"}
    counted = REGISTRY.get_sample_value("qw_faults_total", labels) or 0
    presence = {"kind": "redis", "operation": "chat presence"}
    presence_counted = REGISTRY.get_sample_value("qw_faults_total", presence) or 0
    alice, bob, _ = trio

    response = authed_client(alice).post(
        MESSAGES, {"receiver_id": bob.id, "content": "sent anyway"}, format="json"
    )

    # As on the socket: the limit fails open, the message is stored and sent.
    assert response.status_code == 201
    assert ChatMessage.objects.get(sender=alice).content == "sent anyway"
    assert REGISTRY.get_sample_value("qw_faults_total", labels) == counted + 1
    # SPEC §10: presence is unknown too; nobody is treated as away, nothing is owed.
    assert REGISTRY.get_sample_value("qw_faults_total", presence) == presence_counted + 1
    assert not PendingDelivery.objects.exists()


def test_rest_send_needs_a_token(api_client):
    response = api_client.post(MESSAGES, {"receiver_id": 1, "content": "hi"}, format="json")
    assert response.status_code == 401


# --- read receipts -------------------------------------------------------------
@pytest_socket
async def test_rest_read_marks_earlier_messages_read_and_tells_the_sender(amake_user, open_socket):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    ids = [await sync_to_async(send)(alice, bob, content=f"m{n}") for n in range(3)]
    alice_socket = await open_socket(token=token_for(alice))

    response = await apost(bob, read_url(ids[1]))

    assert response.status_code == 200
    assert response.json() == {"message_id": ids[1], "status": "read"}
    status = await alice_socket.receive_type("message_status")
    assert (status["message_id"], status["status"], status["by"]) == (ids[1], "read", bob.id)
    unread = await sync_to_async(list)(
        ChatMessage.objects.filter(read_at__isnull=True).values_list("id", flat=True)
    )
    assert unread == [ids[2]]
    conversations = (await aget(bob, CONVERSATIONS)).json()
    assert conversations[0]["unread_count"] == 1


@pytest.mark.django_db
@pytest.mark.parametrize("whose", ["my own", "someone else's", "unknown", "hidden"])
def test_reading_a_message_that_is_not_mine_to_read_is_404(trio, whose):
    alice, bob, carol = trio
    message_id = {
        "my own": lambda: send(alice, bob),
        "someone else's": lambda: send(bob, carol),
        "unknown": lambda: 987654321,
        "hidden": lambda: messages_hide(message_ids=[mid := send(bob, alice)]) and mid,
    }[whose]()

    response = authed_client(alice).post(read_url(message_id))

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert not ChatMessage.objects.filter(read_at__isnull=False).exists()
    assert not Event.objects.filter(type="message_status").exists()
