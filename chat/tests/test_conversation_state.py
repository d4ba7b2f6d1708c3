"""Conversation state: moved by every write, equal to a rebuild, right under concurrency."""

import asyncio
import threading
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from chat.models import ConversationState
from chat.selectors import contact_ids, conversations_of_user
from chat.services import (
    SendRequest,
    message_mark_read,
    message_send,
    messages_hide,
    messages_send_batch,
    room_add_member,
    room_create,
    room_remove_member,
)
from chat.state import room_peer, state_rebuild, state_rows
from conftest import authed_client, token_for

pytestmark = pytest.mark.django_db(transaction=True)

CONVERSATIONS = "/api/chat/conversations/"


def send(sender, receiver=None, room=None, content="hi") -> int:
    result = message_send(
        sender_id=sender.id,
        receiver_id=receiver.id if receiver else None,
        room_id=room.id if room else None,
        content=content,
    )
    assert result.ok
    return result.message_id


def unread(user, *, peer=None, room=None) -> int:
    key = peer.id if peer is not None else room_peer(room.id)
    return ConversationState.objects.get(user_id=user.id, peer=key).unread_count


def listed(user) -> list[tuple]:
    """What the conversation list shows the user: (kind, id, last message id, unread)."""
    return [
        (
            c["type"],
            (c["user"] or c["room"])["id"],
            c["last_message"]["message_id"] if c["last_message"] else None,
            c["unread_count"],
        )
        for c in authed_client(user).get(CONVERSATIONS).json()
    ]


def assert_rebuild_matches() -> None:
    maintained = state_rows()
    with transaction.atomic():
        state_rebuild()
    assert state_rows() == maintained


def run_threads(targets) -> None:
    """Run each callable in its own thread (own DB connection), started together."""
    barrier = threading.Barrier(len(targets))
    errors = []

    def run(target):
        try:
            barrier.wait(timeout=10)
            target()
        except Exception as error:  # reported below: a thread's failure fails the test
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


@pytest.fixture
def trio(make_user):
    return make_user("alice"), make_user("bob"), make_user("carol")


# --- every write path ---------------------------------------------------------------
def test_a_send_moves_both_sides_and_the_list_reads_it(trio):
    alice, bob, _ = trio
    send(alice, bob)
    send(alice, bob)
    reply = send(bob, alice)

    assert listed(bob) == [("direct", alice.id, reply, 2)]
    assert listed(alice) == [("direct", bob.id, reply, 1)]
    assert_rebuild_matches()


def test_a_rolled_back_send_changes_no_state(trio):
    alice, bob, _ = trio
    send(alice, bob)
    before = state_rows()
    with pytest.raises(RuntimeError), transaction.atomic():
        send(alice, bob)
        send(bob, alice)
        raise RuntimeError("the caller's transaction fails after the sends")

    assert state_rows() == before
    assert listed(bob)[0][3] == 1


def test_a_read_receipt_marks_this_and_every_earlier_message(trio):
    alice, bob, carol = trio
    first = send(alice, bob)
    second = send(alice, bob)
    send(carol, bob)
    third = send(alice, bob)

    assert message_mark_read(user_id=bob.id, message_id=second)
    assert unread(bob, peer=alice) == 1
    assert unread(bob, peer=carol) == 1
    # an older receipt moves nothing
    assert message_mark_read(user_id=bob.id, message_id=first)
    assert unread(bob, peer=alice) == 1
    assert authed_client(bob).post(f"/api/chat/messages/{third}/read/").status_code == 200
    assert unread(bob, peer=alice) == 0
    assert_rebuild_matches()


async def test_a_socket_read_receipt_clears_the_unread_count(trio, open_socket):
    alice, bob, _ = trio
    await sync_to_async(send)(alice, bob)
    last = await sync_to_async(send)(alice, bob)
    bob_socket = await open_socket(token=token_for(bob))
    alice_socket = await open_socket(token=token_for(alice))

    await bob_socket.send({"type": "read_receipt", "message_id": last})
    await alice_socket.receive_type("message_status")

    assert await sync_to_async(listed)(bob) == [("direct", alice.id, last, 0)]


async def test_socket_sends_batched_by_the_writer_keep_the_counts(trio, open_socket):
    alice, bob, carol = trio
    room = await sync_to_async(room_create)(
        creator_id=alice.id, name="r", member_ids=[bob.id, carol.id]
    )
    alice_socket = await open_socket(token=token_for(alice))
    carol_socket = await open_socket(token=token_for(carol))
    frames = []
    for index in range(15):  # not awaited one by one: the writer batches them
        frames.append((alice_socket, {"receiver_id": bob.id}, f"a{index}"))
        frames.append((carol_socket, {"receiver_id": bob.id}, f"c{index}"))
        frames.append((carol_socket, {"room_id": room.id}, f"r{index}"))
    await asyncio.gather(
        *(
            socket.send({"type": "chat_message", "content": "x", "client_msg_id": key, **target})
            for socket, target, key in frames
        )
    )
    await alice_socket.receive_all("message_sent", 15)
    await carol_socket.receive_all("message_sent", 30)

    assert await sync_to_async(unread)(bob, peer=alice) == 15
    assert await sync_to_async(unread)(bob, peer=carol) == 15
    assert await sync_to_async(unread)(bob, room=room) == 15
    assert await sync_to_async(unread)(alice, room=room) == 15
    assert await sync_to_async(unread)(carol, room=room) == 0
    await sync_to_async(assert_rebuild_matches)()


def test_a_batch_moves_the_state_in_one_statement(trio):
    alice, bob, carol = trio
    room = room_create(creator_id=alice.id, name="r", member_ids=[bob.id, carol.id])
    for size in (1, 30):
        requests = [
            SendRequest(sender_id=alice.id, receiver_id=bob.id, content="1:1"),
            SendRequest(sender_id=carol.id, room_id=room.id, content="room"),
        ] * (size // 2 or 1)
        with CaptureQueriesContext(connection) as queries:
            results = messages_send_batch(requests)
        assert all(result.ok for result in results)
        state_statements = [q for q in queries if "chat_conversationstate" in q["sql"]]
        assert len(state_statements) == 1
    assert_rebuild_matches()


def _direct_batch(alice, bob, inactive, tag: str) -> list[SendRequest]:
    return [
        SendRequest(sender_id=alice.id, receiver_id=bob.id, content="a", client_msg_id=f"{tag}1"),
        SendRequest(sender_id=alice.id, receiver_id=inactive.id, content="to a gone user"),
        SendRequest(sender_id=inactive.id, receiver_id=bob.id, content="from a gone user"),
        SendRequest(sender_id=bob.id, receiver_id=alice.id, content="no client_msg_id"),
        SendRequest(sender_id=alice.id, receiver_id=bob.id, content="a", client_msg_id=f"{tag}1"),
        SendRequest(sender_id=alice.id, receiver_id=alice.id, content="note to self"),
        SendRequest(sender_id=bob.id, receiver_id=alice.id, content="again, no client_msg_id"),
    ]


def test_a_direct_batch_is_one_statement_and_answers_like_the_general_path(
    trio, make_user, monkeypatch
):
    """Issue 18: 1:1 batches check, insert and move the state in one statement;
    every answer and the state are what the general path gives."""
    alice, bob, _ = trio
    gone = make_user("gone")
    gone.is_active = False
    gone.save(update_fields=["is_active"])

    def outcome(results):
        return [(r.error, r.duplicate, r.message_id is not None) for r in results]

    with CaptureQueriesContext(connection) as queries:
        fused = messages_send_batch(_direct_batch(alice, bob, gone, "f"), away=set())
    statements = [q["sql"] for q in queries if q["sql"] not in ("BEGIN", "COMMIT")]
    # the fused statement, the original of the resend read back, the seq upsert with the events
    assert len(statements) == 3, statements
    assert "chat_conversationstate" in statements[0]
    assert fused[4].message_id == fused[0].message_id
    # the fused path's message ids come back to the right requests, in order
    assert fused[3].message_id < fused[5].message_id < fused[6].message_id

    monkeypatch.setattr("chat.services._direct_only", lambda requests: False)
    general = messages_send_batch(_direct_batch(alice, bob, gone, "g"), away=set())
    assert (
        outcome(fused)
        == outcome(general)
        == [
            (None, False, True),
            ("not_found", False, False),
            ("user_inactive", False, False),
            (None, False, True),
            (None, True, True),
            (None, False, True),
            (None, False, True),
        ]
    )
    assert unread(alice, peer=bob) == 4
    assert unread(alice, peer=alice) == 2
    assert unread(bob, peer=alice) == 2  # the resends count once
    assert_rebuild_matches()


def test_room_read_receipts_count_only_messages_by_others_after_it(trio):
    alice, bob, carol = trio
    room = room_create(creator_id=alice.id, name="r", member_ids=[bob.id, carol.id])
    send(alice, room=room)
    middle = send(carol, room=room)
    send(bob, room=room)
    send(carol, room=room)

    assert unread(bob, room=room) == 3
    assert message_mark_read(user_id=bob.id, message_id=middle)
    assert unread(bob, room=room) == 1
    assert_rebuild_matches()


def test_hiding_corrects_last_message_and_unread(trio):
    alice, bob, _ = trio
    room = room_create(creator_id=alice.id, name="r", member_ids=[bob.id])
    kept = send(alice, bob)
    spam = send(alice, bob)
    room_kept = send(alice, room=room)
    room_spam = send(alice, room=room)

    assert messages_hide(message_ids=[spam, room_spam]) == 2

    assert sorted(listed(bob)) == [("direct", alice.id, kept, 1), ("room", room.id, room_kept, 1)]
    assert messages_hide(message_ids=[kept]) == 1
    # a 1:1 conversation with nothing visible leaves the list, not the contacts
    assert listed(bob) == [("room", room.id, room_kept, 1)]
    assert alice.id in contact_ids(user_id=bob.id)
    assert_rebuild_matches()


def test_room_membership_creates_and_removes_the_state(trio):
    alice, bob, carol = trio
    room = room_create(creator_id=alice.id, name="r", member_ids=[bob.id])
    assert listed(carol) == []
    send(alice, room=room)
    send(bob, room=room)

    assert room_add_member(room=room, user_id=carol.id)
    # as before: a new member has read nothing of the room yet
    assert conversations_of_user(user_id=carol.id)[0].unread_count == 2
    assert carol.id in contact_ids(user_id=alice.id)

    assert room_remove_member(room=room, user_id=carol.id)
    assert listed(carol) == []
    assert carol.id not in contact_ids(user_id=alice.id)
    assert not ConversationState.objects.filter(user_id=carol.id).exists()
    assert_rebuild_matches()


def test_bad_receipts_change_no_state(trio):
    alice, bob, carol = trio
    message_id = send(alice, bob)
    before = state_rows()

    assert not message_mark_read(user_id=carol.id, message_id=message_id)  # not hers
    assert not message_mark_read(user_id=alice.id, message_id=message_id)  # her own
    assert authed_client(carol).post(f"/api/chat/messages/{message_id}/read/").status_code == 404
    assert state_rows() == before


# --- concurrency ------------------------------------------------------------------------
def test_concurrent_senders_leave_a_correct_unread_count(make_user):
    receiver, first, second = make_user("r"), make_user("s1"), make_user("s2")
    room = room_create(creator_id=first.id, name="r", member_ids=[receiver.id, second.id])

    def sender(user, *, to_room: bool):
        def work():
            for index in range(10):
                target = {"room_id": room.id} if to_room else {"receiver_id": receiver.id}
                results = messages_send_batch(
                    [SendRequest(sender_id=user.id, content=f"{index}", **target)] * 3
                )
                assert all(result.ok for result in results)

        return work

    # two devices of each sender at once, to the same conversation
    run_threads(
        [
            sender(first, to_room=False),
            sender(first, to_room=False),
            sender(second, to_room=False),
            sender(second, to_room=True),
            sender(first, to_room=True),
        ]
    )

    assert unread(receiver, peer=first) == 60
    assert unread(receiver, peer=second) == 30
    assert unread(receiver, room=room) == 60
    assert unread(second, room=room) == 30
    assert_rebuild_matches()


def test_concurrent_receipts_and_sends_leave_a_correct_unread_count(trio):
    alice, bob, _ = trio
    room = room_create(creator_id=alice.id, name="r", member_ids=[bob.id])
    last = [send(alice, bob) for _ in range(5)][-1]
    room_last = [send(alice, room=room) for _ in range(5)][-1]

    def read_twice():
        message_mark_read(user_id=bob.id, message_id=last)
        message_mark_read(user_id=bob.id, message_id=room_last)

    def keep_sending():
        for _ in range(5):
            send(alice, bob)
            send(alice, room=room)

    run_threads([read_twice, read_twice, keep_sending])

    assert unread(bob, peer=alice) == 5
    assert unread(bob, room=room) == 5
    assert_rebuild_matches()


# --- the mixed workload and the command --------------------------------------------------
def test_rebuild_equals_the_maintained_state_after_a_mixed_workload(trio, make_user):
    alice, bob, carol = trio
    dave = make_user("dave")
    room = room_create(creator_id=alice.id, name="r", member_ids=[bob.id, carol.id])
    other_room = room_create(creator_id=carol.id, name="empty", member_ids=[dave.id])
    sent = [send(alice, bob), send(bob, alice), send(carol, bob), send(alice, alice)]
    sent += [send(alice, room=room), send(bob, room=room), send(carol, room=room)]
    run_threads(
        [
            lambda: [send(dave, bob) for _ in range(4)],
            lambda: [send(carol, room=room) for _ in range(4)],
            lambda: [send(alice, bob) for _ in range(4)],
        ]
    )
    message_mark_read(user_id=bob.id, message_id=sent[0])
    message_mark_read(user_id=alice.id, message_id=sent[5])
    messages_hide(message_ids=[sent[1], sent[6]])
    room_add_member(room=room, user_id=dave.id)
    room_remove_member(room=room, user_id=carol.id)
    room_add_member(room=other_room, user_id=alice.id)
    with pytest.raises(RuntimeError), transaction.atomic():
        send(dave, bob)
        send(alice, room=room)
        raise RuntimeError("rolled back")

    maintained = state_rows()
    out = StringIO()
    call_command("rebuild_conversations", stdout=out)

    assert state_rows() == maintained
    assert f"rebuilt {len(maintained)} conversation state rows" in out.getvalue()


# --- reads ---------------------------------------------------------------------------------
def test_contacts_are_one_query_whatever_the_history(trio, django_assert_num_queries):
    alice, bob, carol = trio
    room = room_create(creator_id=alice.id, name="r", member_ids=[carol.id])
    for _ in range(20):
        send(alice, bob)
        send(bob, alice)
    send(carol, room=room)

    with django_assert_num_queries(1):
        contacts = contact_ids(user_id=alice.id)
    assert contacts == {bob.id, carol.id}


def test_admin_membership_edits_go_through_the_services(trio, make_user):
    alice, bob, carol = trio
    staff = make_user("moderator", is_staff=True)
    staff.__class__.objects.filter(pk=staff.pk).update(is_superuser=True)
    room = room_create(creator_id=alice.id, name="r", member_ids=[bob.id])
    send(alice, room=room)
    bob_membership = room.memberships.get(user_id=bob.id)
    alice_membership = room.memberships.get(user_id=alice.id)
    client = Client()
    client.force_login(staff)

    response = client.post(
        f"/admin/chat/room/{room.id}/change/",
        {
            "name": "r",
            "created_by": str(alice.id),
            "memberships-TOTAL_FORMS": "3",
            "memberships-INITIAL_FORMS": "2",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": str(alice_membership.id),
            "memberships-0-room": str(room.id),
            "memberships-0-user": str(alice.id),
            "memberships-1-id": str(bob_membership.id),
            "memberships-1-room": str(room.id),
            "memberships-1-user": str(bob.id),
            "memberships-1-DELETE": "on",
            "memberships-2-room": str(room.id),
            "memberships-2-user": str(carol.id),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert listed(bob) == []
    assert [(kind, unread) for kind, _, _, unread in listed(carol)] == [("room", 1)]
    assert_rebuild_matches()
