"""Redis beyond one node, on private instances (spare ports, temp dirs): never the shared Redis.

- channel-layer shards: groups hash onto different Redis servers and events
  still cross processes;
- Sentinel: the master is killed during a chat, a replica is promoted, and
  the receiver (resuming from its last seq like the shipped client) misses
  nothing;
- Redis down altogether: sends are still stored (the rate limit fails open)
  and live delivery comes back by itself when Redis does.
"""

import asyncio

import pytest
import redis
from asgiref.sync import sync_to_async
from channels_redis.utils import _consistent_hash
from django.conf import settings
from websockets.asyncio.client import connect

from conftest import token_for
from realtime.models import Event
from realtime.outbox import user_group
from testkit.infra import RedisSentinel, RedisServer, wait_for
from testkit.servers import ServerProcess
from testkit.ws import ResumingReader, next_of_type, send_chat

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"QW_RATE_CHAT_PER_MIN": "100000", "QW_HEARTBEAT_SECONDS": "2"}


@pytest.fixture
def infra():
    """Start private Redis/Sentinel/server processes; all are stopped at teardown."""
    started = []

    def start(thing):
        started.append(thing)
        return thing.start()

    yield start
    for thing in reversed(started):
        if isinstance(thing, ServerProcess):
            thing.stop()
        else:
            thing.cleanup()


def group_channel(group: str) -> str:
    return f"{settings.QW_CHANNEL_PREFIX}__group__{group}"


def subscribed_channels(server: RedisServer) -> set[str]:
    client = redis.Redis(port=server.port, decode_responses=True)
    try:
        return set(client.pubsub_channels())
    finally:
        client.close()


async def stored_seqs(user) -> list[int]:
    return await sync_to_async(
        lambda: list(Event.objects.filter(user=user).order_by("seq").values_list("seq", flat=True))
    )()


async def test_groups_on_different_shards_still_cross_processes(amake_user, infra):
    shards = [infra(RedisServer()), infra(RedisServer())]
    env = {
        **FAST,
        "REDIS_URL": shards[0].url,
        "QW_REDIS_LAYER_URLS": ",".join(shard.url for shard in shards),
    }
    one, two = infra(ServerProcess(**env)), infra(ServerProcess(**env))
    # Two users whose user.{id} groups hash onto different shards.
    users = [await amake_user("u0")]
    shard_of = lambda user: _consistent_hash(group_channel(user_group(user.id)), 2)  # noqa: E731
    while shard_of(users[-1]) == shard_of(users[0]):
        users.append(await amake_user(f"u{len(users)}"))
    alice, bob = users[0], users[-1]

    async with (
        connect(f"{one.ws_url}?token={token_for(alice)}") as alice_ws,
        connect(f"{two.ws_url}?token={token_for(bob)}") as bob_ws,
    ):
        await next_of_type(alice_ws, "authenticated")
        await next_of_type(bob_ws, "authenticated")
        # Each user's group is subscribed on its own shard, and only there.
        for user, ws_shard in ((alice, shard_of(alice)), (bob, shard_of(bob))):
            channel = group_channel(user_group(user.id))
            assert channel in subscribed_channels(shards[ws_shard])
            assert channel not in subscribed_channels(shards[1 - ws_shard])

        ack = await send_chat(alice_ws, bob.id, 1)
        got = await next_of_type(bob_ws, "chat_message")
        assert (got["message_id"], got["content"]) == (ack["message_id"], "m1")
        await send_chat(bob_ws, alice.id, 2)
        reply = await next_of_type(alice_ws, "chat_message")
        while reply["sender_id"] != bob.id:
            reply = await next_of_type(alice_ws, "chat_message")
        assert reply["content"] == "m2"


async def test_sentinel_failover_during_chat_loses_nothing(amake_user, infra):
    master = infra(RedisServer())
    replica = infra(RedisServer(replica_of=master.port))
    wait_for(
        lambda: redis.Redis(port=replica.port).info("replication")["master_link_status"] == "up",
        seconds=10,
        what="replica in sync",
    )
    sentinel = infra(RedisSentinel(master.port))
    env = {
        **FAST,
        "REDIS_URL": "",
        "QW_REDIS_SENTINELS": f"127.0.0.1:{sentinel.port}",
        "QW_REDIS_SENTINEL_MASTERS": RedisSentinel.MASTER,
    }
    one, two = infra(ServerProcess(**env)), infra(ServerProcess(**env))
    alice, bob = await amake_user("alice"), await amake_user("bob")
    total, kill_after = 60, 20
    bob_client = ResumingReader(two.ws_url, token_for(bob))
    try:
        async with connect(f"{one.ws_url}?token={token_for(alice)}") as alice_ws:
            await next_of_type(alice_ws, "authenticated")
            await asyncio.wait_for(bob_client.online.wait(), 10)
            n = 0
            while n < total:
                frame = await send_chat(alice_ws, bob.id, n)
                if frame["type"] == "error":  # not stored: the client sends it again
                    assert frame["code"] == "server_error"
                    await asyncio.sleep(0.2)
                    continue
                n += 1
                if n == kill_after:
                    master.kill()
                    await asyncio.to_thread(
                        wait_for,
                        lambda: sentinel.master() == ("127.0.0.1", replica.port),
                        seconds=30,
                        what="failover",
                    )
            await bob_client.wait_for(total)
            # Live delivery itself came back, not only the heartbeat's catch-up:
            # bob's process subscribed his group again on the promoted master.
            await asyncio.to_thread(
                wait_for,
                lambda: group_channel(user_group(bob.id)) in subscribed_channels(replica),
                seconds=15,
                what="resubscribed on the new master",
            )
    finally:
        await bob_client.stop()
    stored = await stored_seqs(bob)
    assert stored == list(range(1, total + 1))
    assert bob_client.seqs == stored  # every message once after dedupe, in order


async def test_redis_down_sends_still_stored_and_live_delivery_recovers(amake_user, infra):
    private = infra(RedisServer())
    env = {**FAST, "REDIS_URL": private.url, "QW_RATE_CHAT_PER_MIN": "5"}
    one, two = infra(ServerProcess(**env)), infra(ServerProcess(**env))
    alice, bob = await amake_user("alice"), await amake_user("bob")
    bob_client = ResumingReader(two.ws_url, token_for(bob))
    try:
        async with connect(f"{one.ws_url}?token={token_for(alice)}") as alice_ws:
            await next_of_type(alice_ws, "authenticated")
            await asyncio.wait_for(bob_client.online.wait(), 10)
            assert (await send_chat(alice_ws, bob.id, 0))["type"] == "message_sent"
            await bob_client.wait_for(1)

            private.kill()
            # Over the limit of 5/min, yet stored: the limit fails open without Redis.
            for n in range(1, 8):
                assert (await send_chat(alice_ws, bob.id, n))["type"] == "message_sent"
            assert len(await stored_seqs(bob)) == 8

            private.start()
            # Nobody reconnects by hand: the processes find Redis again, and
            # what was sent while it was down reaches bob (catch-up), then live.
            await bob_client.wait_for(8)
            await asyncio.to_thread(
                wait_for,
                lambda: group_channel(user_group(bob.id)) in subscribed_channels(private),
                seconds=15,
                what="resubscribed after the restart",
            )
            assert (await send_chat(alice_ws, bob.id, 8))["type"] == "message_sent"
            await bob_client.wait_for(9)
            # And the limit is enforced again once Redis is back.
            replies = [await send_chat(alice_ws, bob.id, n) for n in range(9, 16)]
            assert "rate_limited" in {reply.get("code") for reply in replies}
            # The last stored ones are still on their way to bob's process.
            await bob_client.wait_for(len(await stored_seqs(bob)))
    finally:
        await bob_client.stop()
    assert bob_client.seqs == await stored_seqs(bob)
