"""Editing and deleting a sent message (SPEC §11)."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db.models import F

from chat.models import ChatMessage
from chat.services import message_send, room_create
from chat.tests.test_api import send
from conftest import authed_client, token_for
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


def url(message_id: int) -> str:
    return f"/api/chat/messages/{message_id}/"


@pytest.fixture
def trio(make_user):
    return make_user("alice"), make_user("bob"), make_user("carol")


def stored(message_id: int) -> tuple:
    return ChatMessage.objects.filter(id=message_id).values_list(
        "content", "edited_at", "is_hidden", "deleted_at"
    )[0]


def events_of(user) -> list[tuple[int, str, dict]]:
    return list(
        Event.objects.filter(user=user).order_by("seq").values_list("seq", "type", "payload")
    )


# --- edit ---------------------------------------------------------------------------
def test_the_sender_edits_and_history_shows_edited_at(trio):
    alice, bob, _ = trio
    message_id = send(alice, bob, content="the fee is 500")

    response = authed_client(alice).patch(
        url(message_id), {"content": " the fee is 600 "}, format="json"
    )

    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "the fee is 600"
    assert body["edited_at"] is not None
    history = authed_client(bob).get("/api/chat/messages/", {"with": alice.id}).json()["results"]
    assert [(m["message_id"], m["content"], m["edited_at"]) for m in history] == [
        (message_id, "the fee is 600", body["edited_at"])
    ]
    # both sides' inboxes: the message, then the edit
    for user in (alice, bob):
        assert [(t, p.get("content")) for _, t, p in events_of(user)] == [
            ("chat_message", "the fee is 500"),
            ("message_updated", "the fee is 600"),
        ]
    assert events_of(bob)[-1][2] == {
        "message_id": message_id,
        "content": "the fee is 600",
        "edited_at": body["edited_at"],
        "mentions": [],
    }


def test_someone_elses_message_is_a_404_and_unchanged(trio):
    alice, bob, carol = trio
    message_id = send(alice, bob, content="mine")
    before = stored(message_id)
    for user in (bob, carol):  # the receiver, a stranger
        response = authed_client(user).patch(url(message_id), {"content": "x"}, format="json")
        assert response.status_code == 404
        assert authed_client(user).delete(url(message_id)).status_code == 404
    assert (
        authed_client(alice).patch(url(10**9), {"content": "x"}, format="json").status_code == 404
    )
    assert stored(message_id) == before
    assert [t for _, t, _ in events_of(bob)] == ["chat_message"]


def test_an_edit_after_the_window_is_a_409_and_unchanged(trio, settings):
    alice, bob, _ = trio
    message_id = send(alice, bob, content="old")
    ChatMessage.objects.filter(id=message_id).update(
        created_at=F("created_at") - timedelta(seconds=settings.QW_EDIT_WINDOW_SECONDS + 1)
    )
    before = stored(message_id)

    response = authed_client(alice).patch(url(message_id), {"content": "new"}, format="json")

    assert response.status_code == 409
    assert response.json() == {"detail": "the edit window of this message has closed"}
    assert stored(message_id) == before
    # deleting has no window
    assert authed_client(alice).delete(url(message_id)).status_code == 204


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"content": "   "}, {"content": ["This field may not be blank."]}),
        (
            {"content": "x" * 10_001},
            {"content": ["Ensure this field has no more than 10,000 characters and 10 KiB."]},
        ),
        ({"content": 5}, {"content": ["Not a valid string."]}),
        ({}, {"content": ["This field is required."]}),
        ({"content": None}, {"content": ["This field may not be null."]}),
    ],
)
def test_an_edit_follows_the_content_rules(trio, body, errors):
    alice, bob, _ = trio
    message_id = send(alice, bob, content="keep me")
    before = stored(message_id)

    response = authed_client(alice).patch(url(message_id), body, format="json")

    assert response.status_code == 400
    assert response.json() == errors
    assert stored(message_id) == before
    assert [t for _, t, _ in events_of(bob)] == ["chat_message"]


def test_the_same_text_again_changes_nothing(trio):
    alice, bob, _ = trio
    message_id = send(alice, bob, content="same")
    response = authed_client(alice).patch(url(message_id), {"content": "same"}, format="json")
    assert response.status_code == 200
    assert response.json()["edited_at"] is None
    assert [t for _, t, _ in events_of(bob)] == ["chat_message"]


# --- delete ---------------------------------------------------------------------------
def test_the_sender_deletes_and_it_leaves_history_and_the_conversation_list(trio):
    alice, bob, _ = trio
    first = send(alice, bob, content="first")
    last = send(alice, bob, content="regret")

    assert authed_client(alice).delete(url(last)).status_code == 204

    assert stored(last)[0] == ""  # the text is gone from the database too
    assert stored(last)[2] is True
    assert stored(last)[3] is not None
    for user, other in ((alice, bob), (bob, alice)):
        history = authed_client(user).get("/api/chat/messages/", {"with": other.id}).json()
        assert [m["message_id"] for m in history["results"]] == [first]
        conversations = authed_client(user).get("/api/chat/conversations/").json()
        assert [c["last_message"]["message_id"] for c in conversations] == [first]
    # bob had not read it: it no longer counts as unread either
    assert authed_client(bob).get("/api/chat/unread/").json() == {"total": 1, "mentions": 0}
    assert authed_client(alice).delete(url(last)).status_code == 404  # already gone


def test_staff_may_delete_anyones_message_and_a_room_member_may_not(trio, make_user):
    alice, bob, carol = trio
    staff = make_user("moderator", is_staff=True)
    room = room_create(creator_id=alice.id, name="team", member_ids=[bob.id, carol.id])
    message_id = send(alice, room=room, content="in the room")

    assert authed_client(bob).delete(url(message_id)).status_code == 404
    assert stored(message_id)[2] is False
    assert authed_client(staff).delete(url(message_id)).status_code == 204
    for member in (alice, bob, carol):
        assert events_of(member)[-1][1:] == ("message_deleted", {"message_id": message_id})


def test_a_deleted_message_never_comes_back_in_a_replay_or_the_inbox(trio):
    alice, bob, _ = trio
    before = send(alice, bob, content="before")
    gone = send(alice, bob, content="secret figure")
    authed_client(alice).patch(url(gone), {"content": "secret figure, edited"}, format="json")
    after = send(alice, bob, content="after")
    authed_client(alice).delete(url(gone))

    inbox = authed_client(bob).get("/api/events/", {"after_seq": 0}).json()["results"]

    # seqs stay gap-free, the order around it is kept, and its text is nowhere
    assert [(e["seq"], e["type"], e["payload"].get("message_id")) for e in inbox] == [
        (1, "chat_message", before),
        (2, "message_deleted", gone),
        (3, "message_deleted", gone),
        (4, "chat_message", after),
        (5, "message_deleted", gone),
    ]
    assert "secret" not in str(inbox)


# --- live, every device, resume ----------------------------------------------------------------
async def test_edits_and_deletes_reach_every_device_of_both_sides_live_and_on_resume(
    amake_user, open_socket
):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    sockets = {
        "alice laptop": await open_socket(token=token_for(alice)),
        "alice phone": await open_socket(token=token_for(alice)),
        "bob laptop": await open_socket(token=token_for(bob)),
        "bob phone": await open_socket(token=token_for(bob)),
    }
    first = (
        await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="1")
    ).message_id
    second = (
        await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="2")
    ).message_id
    client = authed_client(alice)

    response = await sync_to_async(client.patch)(url(first), {"content": "1, fixed"}, format="json")
    assert response.status_code == 200
    assert (await sync_to_async(client.delete)(url(second))).status_code == 204

    for socket in sockets.values():
        messages = await socket.receive_all("chat_message", 2)
        assert [m["message_id"] for m in messages] == [first, second]
        updated = await socket.receive_type("message_updated")
        deleted = await socket.receive_type("message_deleted")
        assert updated == {
            "type": "message_updated",
            "seq": 3,
            "message_id": first,
            "content": "1, fixed",
            "edited_at": response.json()["edited_at"],
            "mentions": [],
        }
        assert deleted == {"type": "message_deleted", "seq": 4, "message_id": second}

    # a device that was away: the replay shows the edit in order and no trace of the deleted text
    resumed = await open_socket(token=token_for(bob), query="last_seq=0")
    frames = [await resumed.receive() for _ in range(5)]
    assert [(f["type"], f.get("seq"), f.get("message_id")) for f in frames] == [
        ("chat_message", 1, first),
        ("message_deleted", 2, second),
        ("message_updated", 3, first),
        ("message_deleted", 4, second),
        ("resumed", None, None),
    ]
    assert frames[1] == {"type": "message_deleted", "seq": 2, "message_id": second}
