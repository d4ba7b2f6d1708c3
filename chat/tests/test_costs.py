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
# insert, the conversation-state upsert, the seq upsert and the event insert.
QUERIES_PER_BATCH = 5
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
    assert len(costs.queries) == QUERIES_PER_BATCH, costs.queries


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
    assert len(costs.queries) == QUERIES_PER_BATCH, costs.queries
