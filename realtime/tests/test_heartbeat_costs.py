"""What a heartbeat tick costs, pinned as counts (issue 18: the idle socket).

A tick beats every socket that is due at once: one frame text, one presence
script call for the batch (never one Redis command per socket) and one ZMSCORE
for the catch-up seqs, however many sockets the tick holds; no SQL once Redis
knows the users' latest seqs (each publish records them in its own round trip).
"""

import pytest
from asgiref.sync import sync_to_async

from chat.services import message_send
from conftest import token_for
from realtime import faults, heartbeats, layers
from realtime.publisher import publisher
from testkit.counting import counting

pytestmark = pytest.mark.django_db(transaction=True)

SOCKETS = 5
# The statement of realtime.selectors.inbox_last_seqs.
INBOX_SEQS_SQL = "SELECT user_id, last_seq FROM"


@pytest.fixture(autouse=True)
def no_audit_left_over(monkeypatch):
    """The wheel and the Redis fault record live as long as the process: an earlier
    test's shorter interval (an audit scheduled sooner) or Redis outage must not
    bring an audit's inbox read into this one (seen on an xdist worker)."""
    monkeypatch.setattr(faults.REDIS, "last_failure_at", float("-inf"))
    for wheel in heartbeats._wheels.values():
        monkeypatch.setattr(wheel, "next_audit", float("inf"))
        monkeypatch.setattr(wheel, "audit_until", float("-inf"))


async def _idle_batch(amake_user, open_socket, prefix: str = "idle"):
    users = [await amake_user(f"{prefix}{n}") for n in range(SOCKETS)]
    sockets = [await open_socket(token=token_for(user)) for user in users]
    for socket in sockets:  # a frame is handled after connect() is done (its presence touch)
        await socket.send({"type": "ping"})
        await socket.receive_type("pong")
    batch = [c for c in heartbeats.wheel().members if c.user_id in {u.id for u in users}]
    assert len(batch) == SOCKETS
    # The layer's command connection opens (CLIENT, PING) before the counted ticks.
    await heartbeats.get_channel_layer().latest_seqs(["user.0"])
    return batch, sockets


async def _beat(batch, sockets, *, audit: bool = False):
    with counting() as costs:
        await heartbeats.beat(batch, audit=audit)
    for socket in sockets:
        assert (await socket.receive())["type"] == "heartbeat"
    return costs


async def test_a_tick_costs_two_redis_commands_and_no_sql_for_all_its_sockets(
    amake_user, open_socket
):
    batch, sockets = await _idle_batch(amake_user, open_socket)
    first = await _beat(batch, sockets)
    # Users Redis has no seq for yet: one inbox read for all of them, recorded.
    assert first.redis_commands == ["EVALSHA", "ZMSCORE", "ZADD"], first.redis_commands
    assert len(first.queries) == 1 and first.queries[0].startswith(INBOX_SEQS_SQL)
    costs = await _beat(batch, sockets)
    assert costs.redis_commands == ["EVALSHA", "ZMSCORE"], costs.redis_commands
    assert costs.queries == []
    assert costs.commits == 0


async def test_an_audit_tick_reads_the_inbox_once_and_raises_the_recorded_seqs(
    amake_user, open_socket
):
    batch, sockets = await _idle_batch(amake_user, open_socket)
    costs = await _beat(batch, sockets, audit=True)
    assert costs.redis_commands == ["EVALSHA", "ZADD"], costs.redis_commands
    assert len(costs.queries) == 1 and costs.queries[0].startswith(INBOX_SEQS_SQL)


async def test_a_recorded_seq_is_never_lowered(amake_user):
    user = await amake_user("seqs")
    layer = heartbeats.get_channel_layer()
    group = f"user.{user.id}"
    await layer.raise_latest_seqs({group: 7})
    await layer.raise_latest_seqs({group: 5})  # a read taken before the publish of 7
    await layer.group_send_many([(group, {"type": "inbox.events", "events": [[6, "x", "{}"]]})])
    assert await layer.latest_seqs([group, "user.0"]) == [7, None]


async def test_a_layer_message_lost_after_its_publish_is_sent_at_the_next_heartbeat(
    amake_user, open_socket, settings, monkeypatch
):
    """SPEC §4.4: the doorbell reached Redis (its seq too) but never this process."""
    monkeypatch.setattr(heartbeats, "AUDIT_INTERVALS", 1000)  # no audit tick meanwhile
    settings.QW_HEARTBEAT_SECONDS = 0.3
    alice, bob = await amake_user("alice"), await amake_user("bob")
    bob_socket = await open_socket(token=token_for(bob))
    for _ in range(2):  # the first beat recorded bob's seq before the second one was written
        await bob_socket.receive_type("heartbeat", timeout=3)
    dropped = []
    receive = layers._Shard._receive_message

    def drop_first_inbox_events(shard, message):
        data = message and message.get("data")
        if not dropped and isinstance(data, bytes) and b"inbox.events" in data:
            dropped.append(message)
            return
        receive(shard, message)

    monkeypatch.setattr(layers._Shard, "_receive_message", drop_first_inbox_events)
    with counting() as costs:
        await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="only")
        frame = await bob_socket.receive_type("chat_message", timeout=3)
    assert dropped
    assert (frame["seq"], frame["content"]) == (1, "only")
    # Repaired from the seq Redis recorded with the publish, not from an inbox read.
    assert not [sql for sql in costs.queries if sql.startswith(INBOX_SEQS_SQL)]
    await bob_socket.assert_nothing(heartbeats=2)


async def test_an_event_whose_publish_failed_is_sent_by_the_audit(
    amake_user, open_socket, settings, monkeypatch
):
    """A publish that failed in another process recorded no seq: the audit's inbox read finds it."""
    monkeypatch.setattr(heartbeats, "AUDIT_INTERVALS", 3)
    settings.QW_HEARTBEAT_SECONDS = 0.3
    alice, bob = await amake_user("alice"), await amake_user("bob")
    bob_socket = await open_socket(token=token_for(bob))
    await bob_socket.receive_type("heartbeat", timeout=3)
    original = publisher.publish

    def drop_inbox_events(messages):
        original([(g, m) for g, m in messages if m["type"] != "inbox.events"])

    monkeypatch.setattr(publisher, "publish", drop_inbox_events)
    await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="unpublished")
    frame = await bob_socket.receive_type("chat_message", timeout=5)
    assert (frame["seq"], frame["content"]) == (1, "unpublished")
