"""The Redis pub/sub channel layer, with a fan-out fast lane and a cheaper connect.

channels-redis's `RedisPubSubLoopLayer` gives every local member of a group
its own copy of each group message: a queue put, a msgpack decode in
`receive`, a dispatch task in `await_many_dispatch` and a frame encode per
member (≈ 130 µs each: a 1,000-member fan-out was ≈ 130 ms of one core).
Here a group message is decoded once per process, and a member whose
consumer registered a fast lane (`fast_lane_join`) and has nothing queued or
in flight gets it at once, synchronously, from the pub/sub reader
(`FastLane.fast_deliver`, which writes the frame to the socket). A member
with anything queued or in flight, or whose consumer declines (a seq gap, a
replay, a full send buffer), gets the message queued as before, already
decoded: order per consumer is the order of the pub/sub connection either way.

Connects are cheaper too:
- nothing ever sends to a consumer's own channel name (every message goes to
  a group), so `new_channel` makes the local queue without a SUBSCRIBE;
- the SUBSCRIBEs of group joins arriving in the same loop iteration (a burst
  of connects) leave as one command, and so do the UNSUBSCRIBEs of a burst of
  closes.

The unsubscribe of a consumer's exit runs as a task of its own:
channels-redis's waits for the shard lock while being cancelled, logs an
ERROR traceback and leaves the channel subscribed. With Redis down, a failed
SUBSCRIBE or UNSUBSCRIBE raises in the consumer's group_add/group_discard
(realtime.consumers closes with 4011) and tells the fault log (realtime.faults).

It also publishes a batch of group messages in one pipelined round trip, and
records in the same round trip the latest seq each group's durable events
carry (`latest_seqs`, read by realtime.heartbeats: the catch-up check of a
heartbeat tick is one ZMSCORE instead of a SQL statement).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close, decode_hosts

from realtime import faults, metrics
from realtime.mailbox import Mailbox

logger = logging.getLogger(__name__)
_cleanups: set[asyncio.Task] = set()


def _cleanup_done(task: asyncio.Task) -> None:
    """Retrieve the unsubscribe's outcome: unretrieved, a failure is asyncio's
    "Task exception was never retrieved" traceback (Redis down, issue 20)."""
    _cleanups.discard(task)
    error = None if task.cancelled() else task.exception()
    if error is not None and not faults.report("layer unsubscribe", error):
        logger.error("unsubscribe failed", exc_info=error)


class FastLane(Protocol):
    """What the layer needs of a consumer that takes group messages synchronously."""

    # True from the moment the layer hands the consumer a queued message until
    # the consumer has dispatched it: a fast-lane message must not overtake it.
    layer_busy: bool

    def fast_deliver(self, message: dict[str, Any]) -> bool:
        """Send it now, without awaiting; False to have it queued instead."""
        ...


class _Shard(RedisSingleShardConnection):
    def __init__(self, host, channel_layer) -> None:
        super().__init__(host, channel_layer)
        self._to_subscribe: set[str] = set()
        self._subscribing: asyncio.Future[None] | None = None
        self._to_unsubscribe: set[str] = set()
        self._unsubscribing: asyncio.Future[None] | None = None

    async def subscribe(self, channel: str) -> None:
        """Join the next SUBSCRIBE of this shard: one command for every join of a loop iteration."""
        if channel in self._subscribed_to and not self._lock.locked():
            return  # (a held lock may be an UNSUBSCRIBE of it: then join the queue)
        self._to_subscribe.add(channel)
        if self._subscribing is None or self._subscribing.done():
            self._subscribing = asyncio.ensure_future(self._subscribe_pending())
        await asyncio.shield(self._subscribing)

    async def _subscribe_pending(self) -> None:
        await asyncio.sleep(0)  # the other joins of this iteration add their channels
        async with self._lock:
            # Joins that arrive while a SUBSCRIBE awaits Redis wait for this
            # task too: loop until none is left (the last check and the end of
            # the task happen without a suspension in between).
            while channels := self._to_subscribe - self._subscribed_to:
                self._to_subscribe = set()
                self._ensure_redis()
                self._ensure_receiver()
                await self._reconnect_if_replies_wait()
                await self._pubsub.subscribe(*channels)
                self._subscribed_to.update(channels)
            self._to_subscribe = set()

    async def _reconnect_if_replies_wait(self) -> None:
        """A new connection for a pubsub without subscriptions that holds an unread reply.

        redis-py's health-check PING, sent by the reader while subscribed, can be
        answered after the last UNSUBSCRIBE's confirmation; channels-redis's reader
        stops reading once nothing is subscribed, so that answer waits in the
        buffer. The next SUBSCRIBE's own health check (not subscribed: a plain
        PING) would then read it as its PONG and fail ("Bad response from PING
        health check": the connect that joined first closed 4011).
        """
        pubsub = self._pubsub
        connection = pubsub.connection if pubsub is not None else None
        if connection is None or pubsub.subscribed or not connection.is_connected:
            return
        if await connection.can_read_destructive():
            await connection.disconnect()  # rare (the last socket just left): reconnect

    async def unsubscribe(self, channel: str) -> None:
        """Join the next UNSUBSCRIBE of this shard (a burst of closes sends one command)."""
        self._to_unsubscribe.add(channel)
        if self._unsubscribing is None or self._unsubscribing.done():
            self._unsubscribing = asyncio.ensure_future(self._unsubscribe_pending())
        await asyncio.shield(self._unsubscribing)

    async def _unsubscribe_pending(self) -> None:
        await asyncio.sleep(0)
        async with self._lock:
            while channels := self._leaving():
                self._ensure_redis()
                self._ensure_receiver()
                await self._pubsub.unsubscribe(*channels)
                self._subscribed_to.difference_update(channels)

    def _leaving(self) -> set[str]:
        """The queued leaves to send now; a group joined again meanwhile stays subscribed."""
        layer = self.channel_layer
        channels = {
            channel
            for channel in self._to_unsubscribe
            if channel in self._subscribed_to
            and channel not in layer.groups
            and channel not in layer.channels
        }
        self._to_unsubscribe = set()
        return channels

    def _receive_message(self, message) -> None:
        if message is None:
            return
        layer: _LoopLayer = self.channel_layer
        name = message["channel"]
        if isinstance(name, bytes):
            name = name.decode()
        data = message["data"]
        queues = layer.channels
        if name in queues:
            queues[name].put_nowait(data)
            return
        members = layer.groups.get(name)
        if not members:
            return
        decoded = layer.channel_layer.deserialize(data)
        metrics.FANOUT_DECODES.inc()
        lanes = layer.fast_lanes
        fast = queued = 0
        for channel in list(members):
            queue = queues.get(channel)
            if queue is None:
                continue
            lane = lanes.get(channel)
            if lane is not None and not lane.layer_busy and queue.empty() and _fast(lane, decoded):
                fast += 1
                continue
            queue.put_nowait(decoded)
            queued += 1
        if fast:
            metrics.FANOUT_FAST.inc(fast)
        if queued:
            metrics.FANOUT_QUEUED.inc(queued)


def _fast(lane: FastLane, message: dict[str, Any]) -> bool:
    try:
        return lane.fast_deliver(message)
    except Exception:
        # One member's failure must not cost the rest of the fan-out its copy.
        logger.exception("fast lane delivery failed; queued instead")
        return False


class _LoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts=None, *args, **kwargs) -> None:
        super().__init__(hosts, *args, **kwargs)
        self._shards = [_Shard(host, self) for host in decode_hosts(hosts)]
        self.fast_lanes: dict[str, FastLane] = {}

    async def _subscribe_to_channel(self, channel: str) -> None:
        # Nothing sends to a consumer's own name: the queue is all it needs.
        self.channels[channel] = Mailbox()

    def open_channel(self, mailbox: Mailbox) -> str:
        """A consumer's channel name whose messages go into `mailbox` (no SUBSCRIBE, no await).

        The consumer reads the mailbox itself (realtime.consumers) instead of
        awaiting `receive` in a task of its own, and calls `close_channel` on exit.
        """
        channel = f"{self.prefix}specific.{uuid.uuid4().hex}"
        self.channels[channel] = mailbox
        return channel

    def close_channel(self, channel: str) -> None:
        """What channels-redis does when a consumer's `receive` is cancelled on its exit."""
        self.fast_lanes.pop(channel, None)
        self.channels.pop(channel, None)
        shard = self._get_shard(channel)
        if channel in shard._subscribed_to:
            task = asyncio.ensure_future(shard.unsubscribe(channel))
            _cleanups.add(task)
            task.add_done_callback(_cleanup_done)

    async def receive(self, channel):
        if channel not in self.channels:
            await self._subscribe_to_channel(channel)
        queue = self.channels[channel]
        try:
            message = await queue.get()
        except (asyncio.CancelledError, GeneratorExit):
            self.close_channel(channel)
            raise
        lane = self.fast_lanes.get(channel)
        if lane is not None:
            lane.layer_busy = True
        if isinstance(message, dict):  # decoded once by the reader for the whole group
            return message
        return self.channel_layer.deserialize(message)

    def fast_lane_join(self, channel: str, lane: FastLane) -> None:
        self.fast_lanes[channel] = lane

    def fast_lane_leave(self, channel: str) -> None:
        self.fast_lanes.pop(channel, None)


# One sorted set per layer prefix: member = group name, score = the highest seq
# of a durable event published to that group. Only ever raised (ZADD GT): two
# processes publishing a user's seqs 6 and 7 in either order leave 7.
LATEST_SEQS_KEY = "latest_seqs"


def latest_seq_of(message: dict[str, Any]) -> int | None:
    """The highest seq a group message carries (`inbox.events`), if any."""
    events = message.get("events") if message.get("type") == "inbox.events" else None
    return max(event[0] for event in events) if events else None


class PubSubChannelLayer(RedisPubSubChannelLayer):
    """Adds `group_send_many`: one pipelined round trip of PUBLISHes for a batch,
    with the batch's latest seqs (`latest_seqs`)."""

    async def group_send_many(self, items: list[tuple[str, dict]]) -> None:
        layer = self._get_layer()
        by_shard: dict[object, list[tuple[str, bytes]]] = defaultdict(list)
        seqs: dict[str, int] = {}
        for group, message in items:
            channel = layer._get_group_channel_name(group)
            by_shard[layer._get_shard(channel)].append((channel, self.serialize(message)))
            seq = latest_seq_of(message)
            if seq is not None:
                seqs[group] = max(seq, seqs.get(group, 0))
        key = self._latest_seqs_key(layer)
        seqs_shard = layer._get_shard(key) if seqs else None
        if seqs_shard is not None:
            by_shard.setdefault(seqs_shard, [])
        for shard, publishes in by_shard.items():
            async with shard._lock:
                shard._ensure_redis()
                pipe = shard._redis.pipeline(transaction=False)
                for channel, data in publishes:
                    pipe.publish(channel, data)
                if shard is seqs_shard:
                    # Same round trip as the PUBLISH: no extra wait per send.
                    pipe.zadd(key, seqs, gt=True)
                await pipe.execute()

    async def latest_seqs(self, groups: Sequence[str]) -> list[int | None]:
        """The latest published seq of each group; None where none was recorded."""
        if not groups:
            return []
        layer = self._get_layer()
        key = self._latest_seqs_key(layer)
        shard = layer._get_shard(key)
        async with shard._lock:
            shard._ensure_redis()
            scores = await shard._redis.zmscore(key, list(groups))
        return [None if score is None else int(score) for score in scores]

    async def raise_latest_seqs(self, seqs: Mapping[str, int]) -> None:
        """Record seqs read from the database (never lowers a published one)."""
        if not seqs:
            return
        layer = self._get_layer()
        key = self._latest_seqs_key(layer)
        shard = layer._get_shard(key)
        async with shard._lock:
            shard._ensure_redis()
            await shard._redis.zadd(key, dict(seqs), gt=True)

    @staticmethod
    def _latest_seqs_key(layer: RedisPubSubLoopLayer) -> str:
        return f"{layer.prefix}:{LATEST_SEQS_KEY}"

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer
