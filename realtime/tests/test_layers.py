"""The pub/sub layer's batched SUBSCRIBE/UNSUBSCRIBE (realtime.layers) on the real Redis."""

import asyncio
import uuid

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import channel_layers, get_channel_layer

from testkit import eventually_async

GROUPS = 30


async def stagger(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def receive_all(layer, channel: str, count: int) -> list[int]:
    return [(await asyncio.wait_for(layer.receive(channel), 5))["n"] for _ in range(count)]


def slow_redis(layer, monkeypatch) -> None:
    """Each (UN)SUBSCRIBE waits a moment first, like a busy Redis: joins pile up behind it."""
    for shard in layer._get_layer()._shards:
        shard._ensure_redis()
        for name in ("subscribe", "unsubscribe"):
            command = getattr(shard._pubsub, name)

            async def slowly(*channels, command=command):
                await asyncio.sleep(0.05)
                return await command(*channels)

            monkeypatch.setattr(shard._pubsub, name, slowly)


@pytest.mark.django_db
async def test_joins_arriving_while_a_subscribe_is_in_flight_are_all_subscribed(monkeypatch):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    tag = uuid.uuid4().hex[:8]
    slow_redis(layer, monkeypatch)

    async def join(n: int) -> None:
        await stagger(n)  # some arrive while an earlier SUBSCRIBE awaits Redis
        await layer.group_add(f"g{tag}.{n}", channel)

    await asyncio.gather(*(join(n) for n in range(GROUPS)))
    for n in range(GROUPS):
        await layer.group_send(f"g{tag}.{n}", {"type": "test.message", "n": n})
    assert sorted(await receive_all(layer, channel, GROUPS)) == list(range(GROUPS))


@pytest.mark.django_db
async def test_a_group_left_and_joined_again_in_one_burst_stays_subscribed(monkeypatch):
    layer = get_channel_layer()
    one, two = await layer.new_channel(), await layer.new_channel()
    tag = uuid.uuid4().hex[:8]
    groups = [f"h{tag}.{n}" for n in range(GROUPS)]
    for group in groups:
        await layer.group_add(group, one)
    slow_redis(layer, monkeypatch)

    async def move(n: int) -> None:
        await stagger(n)
        await layer.group_discard(groups[n], one)  # the last member: UNSUBSCRIBE queued
        await layer.group_add(groups[n], two)  # …and joined again before it leaves

    await asyncio.gather(*(move(n) for n in range(GROUPS)))
    for n, group in enumerate(groups):
        await layer.group_send(group, {"type": "test.message", "n": n})
    assert sorted(await receive_all(layer, two, GROUPS)) == list(range(GROUPS))


@pytest.mark.django_db
async def test_a_health_check_answer_left_unread_is_not_read_as_the_next_subscribes_pong():
    """The reader stops reading when the last group is left: an answer to its health-check
    PING that Redis sent after the UNSUBSCRIBE stays in the buffer (CI: a connect closed 4011
    with "Bad response from PING health check")."""
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)  # shards of its own: none subscribed
    channel = await layer.new_channel()
    group = f"p{uuid.uuid4().hex[:8]}"
    try:
        await layer.group_add(group, channel)
        await layer.group_discard(group, channel)
        loop_layer = layer._get_layer()
        pubsub = loop_layer._get_shard(loop_layer._get_group_channel_name(group))._pubsub
        await eventually_async(lambda: not pubsub.subscribed, within=5, what="the group left")
        connection = pubsub.connection
        await connection.send_command("PING", pubsub.HEALTH_CHECK_MESSAGE, check_health=False)
        await eventually_async(connection.can_read_destructive, within=5, what="the answer came")
        connection.next_health_check = 0  # the next SUBSCRIBE checks the connection first

        await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "test.message", "n": 1})
        assert (await receive_all(layer, channel, 1)) == [1]
    finally:
        await layer.flush()
