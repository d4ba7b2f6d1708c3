"""Rooms over REST (SPEC §7): my rooms, creating, members managed by the creator."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import ChatMessage, Room, RoomMembership
from chat.services import room_create
from conftest import authed_client, token_for

ROOMS = "/api/chat/rooms/"
MESSAGES = "/api/chat/messages/"


def members_url(room_id: int) -> str:
    return f"/api/chat/rooms/{room_id}/members/"


def member_ids(room) -> list[int]:
    return sorted(RoomMembership.objects.filter(room=room).values_list("user_id", flat=True))


@pytest.fixture
def trio(make_user):
    return make_user("alice"), make_user("bob"), make_user("carol")


@pytest.fixture
def team(trio):
    """alice's room with bob; carol is outside."""
    alice, bob, _ = trio
    return room_create(creator_id=alice.id, name="team", member_ids=[bob.id])


# --- my rooms ------------------------------------------------------------------
@pytest.mark.django_db
def test_created_room_has_the_creator_as_member_and_is_listed(trio):
    alice, bob, carol = trio
    client = authed_client(alice)

    response = client.post(ROOMS, {"name": "design", "member_ids": [carol.id, bob.id, bob.id]})

    assert response.status_code == 201
    created = response.json()
    room = Room.objects.get()
    assert created == {
        "id": room.id,
        "name": "design",
        "created_by": alice.id,
        "created_at": room.created_at.isoformat().replace("+00:00", "Z"),
        "member_ids": sorted([alice.id, bob.id, carol.id]),
        "members": [
            {"id": user.id, "username": user.username}
            for user in sorted([alice, bob, carol], key=lambda user: user.id)
        ],
    }
    assert client.get(ROOMS).json() == [created]


@pytest.mark.django_db
def test_room_list_holds_only_my_rooms_newest_first(trio, team):
    alice, bob, carol = trio
    theirs = room_create(creator_id=carol.id, name="theirs", member_ids=[bob.id])
    mine = room_create(creator_id=carol.id, name="with alice", member_ids=[alice.id])

    rooms = authed_client(alice).get(ROOMS).json()

    assert [room["id"] for room in rooms] == [mine.id, team.id]
    assert theirs.id not in [room["id"] for room in rooms]


@pytest.mark.django_db
def test_room_list_query_count_does_not_grow_with_rooms(trio):
    alice, bob, carol = trio
    for n in range(10):
        room_create(creator_id=alice.id, name=f"room {n}", member_ids=[bob.id, carol.id])
    client = authed_client(alice)

    with CaptureQueriesContext(connection) as queries:
        rooms = client.get(ROOMS).json()

    assert len(rooms) == 10
    assert len(queries) == 3  # the user, the rooms, their members


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, body",
    [
        ({}, {"name": ["This field is required."]}),
        ({"name": "  "}, {"name": ["This field may not be blank."]}),
        ({"name": 0}, {"name": ["Not a valid string."]}),
        ({"name": "x" * 201}, {"name": ["Ensure this field has no more than 200 characters."]}),
        ({"name": "ok", "member_ids": "bob"}, {"member_ids": ['Expected a list of items but got type "str".']}),
        ({"name": "ok", "member_ids": [987654321]}, {"member_ids": ['Invalid pk "987654321" - object does not exist.']}),
        ({"name": "ok", "member_ids": ["x"]}, {"member_ids": {"0": ["A valid integer is required."]}}),
    ],
)  # fmt: skip
def test_bad_room_gets_exact_400_and_stores_nothing(trio, payload, body):
    response = authed_client(trio[0]).post(ROOMS, payload, format="json")

    assert response.status_code == 400
    assert response.json() == body
    assert not Room.objects.exists()


@pytest.mark.django_db
def test_inactive_user_cannot_be_made_a_member(trio, make_user):
    gone = make_user("gone", is_active=False)

    response = authed_client(trio[0]).post(
        ROOMS, {"name": "x", "member_ids": [gone.id]}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"member_ids": [f'Invalid pk "{gone.id}" - object does not exist.']}


def test_rooms_need_a_token(api_client):
    assert api_client.get(ROOMS).status_code == 401
    assert api_client.post(ROOMS, {"name": "x"}).status_code == 401


# --- members -------------------------------------------------------------------
@pytest.mark.django_db
def test_creator_adds_a_member_who_can_then_read_the_history(trio, team):
    alice, bob, carol = trio
    client = authed_client(alice)
    sent = client.post(MESSAGES, {"room_id": team.id, "content": "hi"}, format="json")
    assert sent.status_code == 201

    added = client.post(members_url(team.id), {"user_id": carol.id}, format="json")
    again = client.post(members_url(team.id), {"user_id": carol.id}, format="json")

    assert (added.status_code, again.status_code) == (201, 200)
    assert added.json()["member_ids"] == sorted([alice.id, bob.id, carol.id])
    assert again.json() == added.json()
    history = authed_client(carol).get(MESSAGES, {"room": team.id})
    assert [m["content"] for m in history.json()["results"]] == ["hi"]


@pytest.mark.django_db
def test_creator_removes_a_member(trio, team):
    alice, bob, _ = trio

    response = authed_client(alice).delete(members_url(team.id), {"user_id": bob.id})

    assert response.status_code == 200
    assert response.json()["member_ids"] == [alice.id]
    assert member_ids(team) == [alice.id]
    assert authed_client(bob).get(ROOMS).json() == []


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "delete"])
def test_member_who_is_not_the_creator_is_403_and_changes_nothing(trio, team, method):
    alice, bob, carol = trio

    response = getattr(authed_client(bob), method)(
        members_url(team.id), {"user_id": carol.id if method == "post" else alice.id}
    )

    assert response.status_code == 403
    assert response.json() == {"detail": "Only the room's creator can manage its members."}
    assert member_ids(team) == sorted([alice.id, bob.id])


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["post", "delete"])
@pytest.mark.parametrize("room", ["foreign", "unknown"])
def test_non_member_or_unknown_room_is_404_and_changes_nothing(trio, team, method, room):
    alice, bob, carol = trio
    room_id = team.id if room == "foreign" else 987654321

    response = getattr(authed_client(carol), method)(
        members_url(room_id), {"user_id": carol.id if method == "post" else bob.id}
    )

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    assert member_ids(team) == sorted([alice.id, bob.id])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method, payload, body",
    [
        ("post", {}, {"user_id": ["This field is required."]}),
        ("post", {"user_id": "bob"}, {"user_id": ["A valid integer is required."]}),
        ("post", {"user_id": 987654321}, {"user_id": ['Invalid pk "987654321" - object does not exist.']}),
        ("post", {"user_id": "GONE"}, {"user_id": ['Invalid pk "GONE" - object does not exist.']}),
        ("delete", {"user_id": 987654321}, {"user_id": ['Invalid pk "987654321" - object does not exist.']}),
        ("delete", {"user_id": "ALICE"}, {"user_id": ["The creator cannot be removed from the room."]}),
    ],
)  # fmt: skip
def test_bad_member_change_gets_exact_400_and_changes_nothing(
    trio, team, make_user, method, payload, body
):
    alice, bob, _ = trio
    gone = make_user("gone", is_active=False)
    ids = {"GONE": gone.id, "ALICE": alice.id}
    payload = {key: ids.get(value, value) for key, value in payload.items()}
    body = {key: [m.replace("GONE", str(gone.id)) for m in value] for key, value in body.items()}

    response = getattr(authed_client(alice), method)(members_url(team.id), payload, format="json")

    assert response.status_code == 400
    assert response.json() == body
    assert member_ids(team) == sorted([alice.id, bob.id])


@pytest.mark.django_db
def test_removing_someone_who_is_not_a_member_is_404(trio, team):
    alice, _, carol = trio

    response = authed_client(alice).delete(members_url(team.id), {"user_id": carol.id})

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


# --- live effects --------------------------------------------------------------
async def apost(user, url: str, data: dict):
    return await sync_to_async(authed_client(user).post)(url, data, format="json")


@pytest.mark.django_db(transaction=True)
async def test_removed_member_receives_nothing_after_removal_and_loses_the_history(
    amake_user, open_socket
):
    alice, bob, carol = [await amake_user(name) for name in ("alice", "bob", "carol")]
    room = await sync_to_async(room_create)(
        creator_id=alice.id, name="team", member_ids=[bob.id, carol.id]
    )
    bob_socket = await open_socket(token=token_for(bob))
    carol_socket = await open_socket(token=token_for(carol))
    await apost(alice, MESSAGES, {"room_id": room.id, "content": "before"})
    assert (await bob_socket.receive_type("chat_message"))["content"] == "before"
    await carol_socket.receive_type("chat_message")

    removed = await sync_to_async(authed_client(alice).delete)(
        members_url(room.id), {"user_id": bob.id}, format="json"
    )
    assert removed.status_code == 200
    await apost(alice, MESSAGES, {"room_id": room.id, "content": "after"})

    assert (await carol_socket.receive_type("chat_message"))["content"] == "after"
    await bob_socket.assert_nothing()
    history = await sync_to_async(authed_client(bob).get)(MESSAGES, {"room": room.id})
    assert history.status_code == 404
    sent = await apost(bob, MESSAGES, {"room_id": room.id, "content": "still here?"})
    assert sent.status_code == 404
    assert not await sync_to_async(ChatMessage.objects.filter(sender=bob).exists)()


@pytest.mark.django_db(transaction=True)
async def test_added_member_receives_what_is_sent_afterwards(amake_user, open_socket):
    alice, carol = await amake_user("alice"), await amake_user("carol")
    room = await sync_to_async(room_create)(creator_id=alice.id, name="team")
    carol_socket = await open_socket(token=token_for(carol))

    added = await apost(alice, members_url(room.id), {"user_id": carol.id})
    assert added.status_code == 201
    await apost(alice, MESSAGES, {"room_id": room.id, "content": "welcome"})

    frame = await carol_socket.receive_type("chat_message")
    assert (frame["room_id"], frame["content"]) == (room.id, "welcome")
