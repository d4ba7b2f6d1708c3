"""The pub/sub layer's batched SUBSCRIBE/UNSUBSCRIBE (realtime.layers) on the real Redis."""

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer

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
