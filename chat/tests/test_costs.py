"""What the speed of one process depends on, pinned as counts (never as times).

docs/performance.md has the measurements; these keep the hot paths from
growing a query or a round trip unnoticed.
"""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db.models.sql.compiler import SQLCompiler

from chat.models import ChatMessage, Room, RoomMembership
from chat.selectors import contact_ids
from chat.services import SendRequest, message_send
from chat.writer import writer
from conftest import token_for
from realtime.auth.socket import socket_session
from testkit.counting import counting

pytestmark = pytest.mark.django_db(transaction=True)

# A writer batch, whatever its size: the senders' active check, the messages
# insert, the conversation-state upsert, and the seq upsert with the event
# insert (one statement, issue 18).
QUERIES_PER_BATCH = 4
# A batch of 1:1 messages without attachments (issue 18): the active check, the
# messages insert and the state upsert in one statement, then the seq upsert
# with the event insert.
QUERIES_PER_DIRECT_BATCH = 2
# A send's Redis commands, sorted: the rate limit's and the receiver's presence
# scripts in one EVALSHA, a PUBLISH per user and, in the publishes' pipeline, one
# ZADD of the users' latest seqs (the heartbeat's catch-up reads them, realtime.heartbeats).
SEND_REDIS_COMMANDS = ["EVALSHA", "PUBLISH", "PUBLISH", "ZADD"]
BURST = 8


@pytest.fixture
async def pair(amake_user):
    return await amake_user("alice"), await amake_user("bob")


async def settle(costs, attribute: str) -> None:
    """Wait until the count stops growing (work after the frame, e.g. presence, lands)."""
    loop = asyncio.get_running_loop()
    deadline, last = loop.time() + 3, None
    while loop.time() < deadline:
        now = len(getattr(costs, attribute))
        if now == last:
            return
        last = now
        await asyncio.sleep(0.1)


async def warm_up(open_socket, user) -> None:
    """The process's first socket joins `broadcast` and loads the presence script."""
    with counting() as costs:
        await open_socket(token=token_for(user))
        await settle(costs, "redis_commands")


async def test_a_connect_reads_the_database_with_one_statement_and_no_orm_compile(
    pair, open_socket, monkeypatch
):
    alice, bob = pair
    await warm_up(open_socket, alice)
    compiles = []
    as_sql = SQLCompiler.as_sql

    def counted_as_sql(self, *args, **kwargs):
        compiles.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counted_as_sql)
    compiles.clear()
    with counting() as costs:
        socket = await open_socket(token=token_for(bob))
        await settle(costs, "queries")
    assert socket.hello["user_id"] == bob.id
    # socket_session: the user, is_staff, last_seq and the contacts in one statement,
    # compiled once per process (the first connect, in warm_up).
    assert len(costs.queries) == 1, costs.queries
    assert costs.commits == 0
    assert compiles == []


@sync_to_async
def contacts_two_ways(user, roommate, correspondent):
    room = Room.objects.create(name="r", created_by=user)
    RoomMembership.objects.bulk_create(
        [RoomMembership(room=room, user=user), RoomMembership(room=room, user=roommate)]
    )
    message_send(sender_id=correspondent.id, receiver_id=user.id, content="hi")
    session = socket_session(user.id)
    return session.reads["presence.contacts"], contact_ids(user_id=user.id)


async def test_the_connect_statement_reads_the_same_contacts_as_the_selector(amake_user):
    bob, alice, carol = await amake_user("bob"), await amake_user("alice"), await amake_user("c")
    at_connect, selected = await contacts_two_ways(bob, alice, carol)
    assert at_connect == selected == {alice.id, carol.id}


async def test_a_connect_sends_three_redis_commands(pair, open_socket):
    alice, bob = pair
    await warm_up(open_socket, alice)
    with counting() as costs:
        await open_socket(token=token_for(bob))
        await settle(costs, "redis_commands")
    # The token's revocation watermark (an MGET: a burst shares one), the user group (broadcast is joined
    # once per process; nothing is ever sent to the consumer's own channel, so
    # it is not subscribed), and one presence script; no contacts, so no
    # announcement.
    assert sorted(costs.redis_commands) == ["EVALSHA", "MGET", "SUBSCRIBE"], costs.redis_commands


async def test_an_open_socket_keeps_no_task_of_channels_dispatch_loop(amake_user, open_socket):
    first, *users = [await amake_user(f"tasks{n}") for n in range(4)]
    await warm_up(open_socket, first)
    before = len(asyncio.all_tasks())
    for user in users:
        await open_socket(token=token_for(user))
    loop = asyncio.get_running_loop()
    deadline, counts = loop.time() + 3, []
    while loop.time() < deadline and (len(counts) < 3 or len(set(counts[-3:])) > 1):
        counts.append(len(asyncio.all_tasks()) - before)  # until connect's own work is done
        await asyncio.sleep(0.1)
    # Per socket: the consumer's task (the test communicator's application)
    # and the one moving the test server's events into its mailbox; under
    # uvicorn the mailbox is the server's own queue, so only the first
    # (realtime.mailbox). channels' await_many_dispatch kept two more per socket.
    assert counts[-1] == 2 * len(users), counts


async def test_a_burst_of_connects_shares_its_redis_round_trips(amake_user, open_socket):
    first, *users = [await amake_user(f"burst{n}") for n in range(BURST + 1)]
    await warm_up(open_socket, first)
    with counting() as costs:
        sockets = await asyncio.gather(*(open_socket(token=token_for(user)) for user in users))
        await settle(costs, "redis_commands")
    assert [socket.hello["user_id"] for socket in sockets] == [user.id for user in users]
    # One revocation MGET and one SUBSCRIBE for the burst (the tokens are checked
    # and the groups joined in the same loop iteration). The presence touches
    # follow each socket's SQL statement, which return from the DB threads at
    # different moments: they share a script call only when they land together.
    # (CLIENT SETINFO: the pool opening a connection for commands in flight together.)
    commands = sorted(name for name in costs.redis_commands if name != "CLIENT")
    assert [name for name in commands if name != "EVALSHA"] == ["MGET", "SUBSCRIBE"], commands
    assert 1 <= commands.count("EVALSHA") <= BURST, commands


async def test_a_chat_message_costs_one_transaction_of_fixed_queries(pair, open_socket):
    alice, bob = pair
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    with counting() as costs:
        await alice_socket.send(
            {"type": "chat_message", "receiver_id": bob.id, "content": "hi", "client_msg_id": "c1"}
        )
        ack = await alice_socket.receive_type("message_sent")
        frame = await bob_socket.receive_type("chat_message")
    assert frame["message_id"] == ack["message_id"]
    assert costs.commits == 1
    assert len(costs.queries) == QUERIES_PER_DIRECT_BATCH, costs.queries


async def test_concurrent_sends_are_stored_in_one_transaction(pair):
    alice, bob = pair
    requests = [
        SendRequest(sender_id=alice.id, receiver_id=bob.id, content=f"m{i}", client_msg_id=f"k{i}")
        for i in range(20)
    ]
    with counting() as costs:
        results = await asyncio.gather(*(writer.submit(request) for request in requests))
    assert all(result.ok for result in results)
    assert len({result.message_id for result in results}) == 20
    assert await sync_to_async(ChatMessage.objects.filter(sender=alice).count)() == 20
    assert costs.commits == 1
    # bob has no socket: one more, the INSERT of his pending deliveries (SPEC §10)
    assert len(costs.queries) == QUERIES_PER_DIRECT_BATCH + 1, costs.queries


# --- SPEC §11: what an edit, a delete and a send with attachments cost -------------------
async def quiet(socket) -> None:
    """Let the connects' own work (presence, subscriptions) finish before counting."""
    await socket.send({"type": "ping"})
    await socket.receive_type("pong")
    with counting() as costs:
        await settle(costs, "redis_commands")


async def _upload(user, name: str, data: bytes) -> int:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from chat.attachments import attachment_create

    upload = SimpleUploadedFile(name, data)
    return (await sync_to_async(attachment_create)(uploader_id=user.id, upload=upload)).id


async def test_a_send_with_two_attachments_costs_two_statements_more(pair, open_socket):
    alice, bob = pair
    ids = [
        await _upload(alice, "a.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64),
        await _upload(alice, "b.txt", b"notes"),
    ]
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    # one plain message first: the rate limiter's Redis connection is opened once per process
    await alice_socket.send({"type": "chat_message", "receiver_id": bob.id, "content": "warm"})
    await bob_socket.receive_type("chat_message")
    await quiet(alice_socket)
    with counting() as costs:
        await alice_socket.send(
            {
                "type": "chat_message",
                "receiver_id": bob.id,
                "content": "files",
                "attachment_ids": ids,
            }
        )
        await alice_socket.receive_type("message_sent")
        frame = await bob_socket.receive_type("chat_message")
        await settle(costs, "redis_commands")
    assert [a["id"] for a in frame["attachments"]] == ids
    assert costs.commits == 1
    # the general batch's four, plus the uploads locked (SELECT … FOR UPDATE) and attached (one UPDATE)
    assert len(costs.queries) == QUERIES_PER_BATCH + 2, costs.queries
    # the rate limit's and the receiver's presence (SPEC §10) scripts in one call
    # (issue 18), then one publish per user (sender's other tabs, receiver) and, in
    # the same pipeline, the users' latest seqs for the heartbeat's catch-up
    assert sorted(costs.redis_commands) == SEND_REDIS_COMMANDS, costs.redis_commands


async def test_an_edit_and_a_delete_cost_fixed_statements_and_one_publish_per_user(
    pair, open_socket
):
    from chat.edits import message_delete, message_edit
    from chat.services import message_send

    alice, bob = pair
    sent = await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="a")
    bob_socket = await open_socket(token=token_for(bob))
    await quiet(bob_socket)
    with counting() as edit_costs:
        await sync_to_async(message_edit)(user_id=alice.id, message_id=sent.message_id, content="b")
        await bob_socket.receive_type("message_updated")
        await settle(edit_costs, "redis_commands")
    with counting() as delete_costs:
        await sync_to_async(message_delete)(
            user_id=alice.id, is_staff=False, message_id=sent.message_id
        )
        await bob_socket.receive_type("message_deleted")
        await settle(delete_costs, "redis_commands")
    # the message locked, updated, the seq upsert with the event insert; one publish
    # per side, with both sides' latest seqs in the same pipeline
    assert len(edit_costs.queries) == 3, edit_costs.queries
    assert edit_costs.commits == 1
    assert edit_costs.redis_commands == ["PUBLISH", "PUBLISH", "ZADD"]
    # the permission read, the rooms and the message locked, its files read and removed,
    # the message hidden and erased, each side's conversation state, the seq upsert with
    # the event insert (with the savepoint of the shared messages_hide around them)
    assert len(delete_costs.queries) == 11, delete_costs.queries
    assert delete_costs.commits == 1
    assert delete_costs.redis_commands == ["PUBLISH", "PUBLISH", "ZADD"]


# --- what SPEC §10 (offline delivery) adds to a send --------------------------------
async def send_costs(alice, bob) -> tuple[list[str], list[str]]:
    # A first send: the process's Redis client and the script (loaded if Redis lacks it).
    with counting() as warm:
        await writer.submit(SendRequest(sender_id=alice.id, receiver_id=bob.id, content="warm"))
        await settle(warm, "redis_commands")
    with counting() as costs:
        result = await writer.submit(
            SendRequest(sender_id=alice.id, receiver_id=bob.id, content="hi", client_msg_id="x")
        )
        await settle(costs, "redis_commands")
    assert result.ok
    return costs.queries, sorted(costs.redis_commands)


async def test_a_message_to_someone_present_adds_no_redis_command_and_no_query(pair, open_socket):
    alice, bob = pair
    await warm_up(open_socket, bob)  # bob is on the page (his connect's work settled)
    queries, redis_commands = await send_costs(alice, bob)
    assert len(queries) == QUERIES_PER_DIRECT_BATCH, queries
    assert not any("pendingdelivery" in query for query in queries)
    # The rate limit and the receivers' presence (two scripts in one EVALSHA,
    # issue 18), then the doorbell to alice's and bob's groups with their seqs.
    assert redis_commands == SEND_REDIS_COMMANDS, redis_commands


async def test_a_message_to_someone_away_adds_only_the_pending_rows_insert(pair):
    alice, bob = pair
    queries, redis_commands = await send_costs(alice, bob)
    assert len(queries) == QUERIES_PER_DIRECT_BATCH + 1, queries
    assert "notifications_pendingdelivery" in queries[-1]
    assert redis_commands == SEND_REDIS_COMMANDS, redis_commands
