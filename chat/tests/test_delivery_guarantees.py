"""SPEC §4: persist then publish, gap-free seq, resume, gap repair, idempotent sends."""

import asyncio
import threading
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from chat.models import ChatMessage
from chat.services import message_send
from conftest import token_for
from realtime import outbox
from realtime.db import run_db
from realtime.models import Event
from realtime.publisher import publisher
from realtime.selectors import inbox_last_seq
from testkit import eventually_async

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def pair(amake_user):
    return await amake_user("alice"), await amake_user("bob")


def seqs_of(user) -> list[int]:
    return list(Event.objects.filter(user=user).order_by("seq").values_list("seq", flat=True))


# --- persist, then publish ------------------------------------------------------
def test_rolled_back_message_is_never_published_nor_stored(make_user, published):
    alice, bob = make_user("alice"), make_user("bob")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        result = message_send(sender_id=alice.id, receiver_id=bob.id, content="never")
        assert result.ok
        raise Abort
    assert published == []
    assert ChatMessage.objects.count() == 0
    assert Event.objects.count() == 0
    # the seq counter rolled back too: the next event is seq 1
    message_send(sender_id=alice.id, receiver_id=bob.id, content="kept")
    assert seqs_of(bob) == [1]


def test_nothing_is_published_before_commit(make_user, published):
    alice, bob = make_user("alice"), make_user("bob")
    with transaction.atomic():
        message_send(sender_id=alice.id, receiver_id=bob.id, content="one")
        assert published == []
    groups = sorted(group for group, _ in published)
    assert groups == sorted([outbox.user_group(alice.id), outbox.user_group(bob.id)])


def test_concurrent_senders_give_gap_free_seqs_in_commit_order(make_user):
    """20 threads with their own connections and real commits, one receiver."""
    receiver = make_user("receiver")
    senders = [make_user(f"sender{n}") for n in range(20)]
    per_sender = 10
    barrier = threading.Barrier(len(senders))
    failures: list[BaseException] = []

    def send_all(sender) -> None:
        try:
            barrier.wait()
            for n in range(per_sender):
                message_send(
                    sender_id=sender.id, receiver_id=receiver.id, content=f"{sender.id}:{n}"
                )
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send_all, args=(sender,)) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    total = len(senders) * per_sender
    assert seqs_of(receiver) == list(range(1, total + 1))
    # commit order: a later seq never points at an earlier-inserted message of
    # the same sender (each sender sends sequentially)
    events = Event.objects.filter(user=receiver).order_by("seq")
    last_by_sender: dict[int, int] = {}
    for payload in events.values_list("payload", flat=True):
        sender_id, message_id = payload["sender_id"], payload["message_id"]
        assert message_id > last_by_sender.get(sender_id, 0)
        last_by_sender[sender_id] = message_id
    assert ChatMessage.objects.filter(receiver=receiver).count() == total


# --- resume -------------------------------------------------------------------------
@sync_to_async
def send_many(sender, receiver, count: int, prefix: str = "m") -> list[int]:
    ids = []
    for n in range(count):
        result = message_send(sender_id=sender.id, receiver_id=receiver.id, content=f"{prefix}{n}")
        ids.append(result.message_id)
    close_old_connections()
    return ids


async def test_offline_receiver_gets_everything_in_order_on_reconnect(pair, open_socket, settings):
    settings.QW_REPLAY_BATCH = 7  # several bounded batches
    alice, bob = pair
    ids = await send_many(alice, bob, 30)
    bob_socket = await open_socket(token=token_for(bob), query="last_seq=0")
    frames = [await bob_socket.receive() for _ in range(31)]
    assert [f["type"] for f in frames[:30]] == ["chat_message"] * 30
    assert [f["seq"] for f in frames[:30]] == list(range(1, 31))
    assert [f["message_id"] for f in frames[:30]] == ids
    assert frames[30] == {"type": "resumed", "last_seq": 30, "count": 30}
    await bob_socket.assert_nothing()


async def test_resume_frame_replays_after_the_given_seq(pair, open_socket):
    alice, bob = pair
    await send_many(alice, bob, 5)
    bob_socket = await open_socket(token=token_for(bob))
    assert bob_socket.hello["last_seq"] == 5
    await bob_socket.send({"type": "resume", "last_seq": 3})
    assert [(await bob_socket.receive())["seq"] for _ in range(2)] == [4, 5]
    assert await bob_socket.receive() == {"type": "resumed", "last_seq": 5, "count": 2}


async def test_resume_with_nothing_missed_sends_resumed_with_zero(pair, open_socket):
    alice, bob = pair
    await send_many(alice, bob, 2)
    bob_socket = await open_socket(token=token_for(bob), query="last_seq=2")
    assert await bob_socket.receive() == {"type": "resumed", "last_seq": 2, "count": 0}


async def test_resume_racing_live_traffic_loses_and_duplicates_nothing(pair, open_socket, settings):
    settings.QW_REPLAY_BATCH = 5
    alice, bob = pair
    await send_many(alice, bob, 40, prefix="before")
    sending = asyncio.ensure_future(send_many(alice, bob, 60, prefix="during"))
    # connect once live traffic is committing
    await eventually_async(
        lambda: run_db(lambda: inbox_last_seq(bob.id) > 40)(), within=10, interval=0.005
    )
    bob_socket = await open_socket(token=token_for(bob), query="last_seq=0")
    await sending
    seqs = []
    resumed = None
    while len(seqs) < 100 or resumed is None:
        frame = await bob_socket.receive(timeout=5)
        if frame["type"] == "resumed":
            resumed = frame
        elif frame["type"] == "chat_message":
            seqs.append(frame["seq"])
    assert seqs == list(range(1, 101))
    assert resumed["count"] == resumed["last_seq"]
    await bob_socket.assert_nothing()


async def test_resume_past_retention_requires_resync(pair, open_socket):
    alice, bob = pair
    await send_many(alice, bob, 4)

    @sync_to_async
    def age_and_prune():
        Event.objects.filter(user=bob, seq__lte=2).update(
            created_at=timezone.now() - timedelta(days=31)
        )
        call_command("prune_events")

    await age_and_prune()
    assert await sync_to_async(seqs_of)(bob) == [3, 4]
    bob_socket = await open_socket(token=token_for(bob), query="last_seq=1")
    assert await bob_socket.receive() == {"type": "resync_required"}
    # resuming from a point still retained works
    await bob_socket.send({"type": "resume", "last_seq": 2})
    assert [(await bob_socket.receive())["seq"] for _ in range(2)] == [3, 4]
    assert (await bob_socket.receive())["type"] == "resumed"


# --- gap repair --------------------------------------------------------------------
async def test_dropped_layer_message_is_repaired_from_the_database(pair, open_socket):
    """The layer is at-most-once: simulate it dropping one publish."""
    alice, bob = pair
    bob_socket = await open_socket(token=token_for(bob))
    original = publisher.publish
    dropped = []

    def drop_first(messages):
        if not dropped and any(message["type"] == "inbox.events" for _, message in messages):
            dropped.append(messages)
            return
        original(messages)

    publisher.publish = drop_first
    try:
        await send_many(alice, bob, 1, prefix="lost")
        await bob_socket.assert_nothing()
        await send_many(alice, bob, 1, prefix="next")
    finally:
        publisher.publish = original
    first = await bob_socket.receive_type("chat_message")
    second = await bob_socket.receive_type("chat_message")
    assert (first["seq"], first["content"]) == (1, "lost0")
    assert (second["seq"], second["content"]) == (2, "next0")
    assert dropped


# --- idempotent sends --------------------------------------------------------------
async def test_resend_after_lost_ack_is_acknowledged_as_duplicate(pair, open_socket):
    alice, bob = pair
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    frame = {
        "type": "chat_message",
        "receiver_id": bob.id,
        "content": "once",
        "client_msg_id": "abc",
    }
    await alice_socket.send(frame)
    first = await alice_socket.receive_type("message_sent")
    # the client lost the ack (reconnect) and sends again
    alice_again = await open_socket(token=token_for(alice))
    await alice_again.send(frame)
    second = await alice_again.receive_type("message_sent")
    assert first["duplicate"] is False
    assert second["duplicate"] is True
    assert second["message_id"] == first["message_id"]
    assert second["timestamp"] == first["timestamp"]
    assert (await bob_socket.receive_type("chat_message"))["message_id"] == first["message_id"]
    await bob_socket.assert_nothing()
    assert await sync_to_async(ChatMessage.objects.count)() == 1


def test_two_concurrent_resends_store_one_message(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    barrier = threading.Barrier(8)
    results = []

    def resend() -> None:
        try:
            barrier.wait()
            results.append(
                message_send(
                    sender_id=alice.id, receiver_id=bob.id, content="hi", client_msg_id="same"
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=resend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len({result.message_id for result in results}) == 1
    assert sorted(result.duplicate for result in results) == [False] + [True] * 7
    assert ChatMessage.objects.count() == 1
    assert seqs_of(bob) == [1]


def test_same_client_msg_id_from_another_sender_is_a_new_message(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    first = message_send(sender_id=alice.id, receiver_id=bob.id, content="a", client_msg_id="k")
    second = message_send(sender_id=bob.id, receiver_id=alice.id, content="b", client_msg_id="k")
    assert first.message_id != second.message_id
    assert not second.duplicate


async def test_lost_last_event_arrives_at_the_next_heartbeat(pair, open_socket, settings):
    """No later event will reveal the gap: the heartbeat's catch-up must."""
    settings.QW_HEARTBEAT_SECONDS = 0.3
    alice, bob = pair
    bob_socket = await open_socket(token=token_for(bob))
    original = publisher.publish

    def drop_inbox_events(messages):
        original([(g, m) for g, m in messages if m["type"] != "inbox.events"])

    publisher.publish = drop_inbox_events
    try:
        await send_many(alice, bob, 1, prefix="only")
        frame = await bob_socket.receive_type("chat_message", timeout=3)
    finally:
        publisher.publish = original
    assert (frame["seq"], frame["content"]) == (1, "only0")
    await bob_socket.assert_nothing(heartbeats=2)


async def test_catch_up_beside_live_traffic_sends_each_event_once(pair, open_socket, settings):
    settings.QW_HEARTBEAT_SECONDS = 0.02  # catch-up runs constantly beside live delivery
    alice, bob = pair
    bob_socket = await open_socket(token=token_for(bob))
    await send_many(alice, bob, 40)
    frames = await bob_socket.receive_all("chat_message", 40)
    assert [frame["seq"] for frame in frames] == list(range(1, 41))
    await bob_socket.assert_nothing(heartbeats=2)
