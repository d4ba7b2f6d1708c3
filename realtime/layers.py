"""The Redis pub/sub channel layer, with a consumer's exit that cleans up.

channels-redis's `RedisPubSubLoopLayer.receive` unsubscribes a consumer's
channel while the consumer is being cancelled; the unsubscribe waits for the
shard lock, is cancelled in turn, logs an ERROR traceback and leaves the
channel subscribed on the process's pub/sub connection. Here the unsubscribe
runs as a task of its own, so it completes (or, with Redis down, tells the
fault log); with Redis down a consumer's own channel is still created, so the
consumer lives to close the socket with 4011 (realtime.faults).

It also publishes a batch of group messages in one pipelined round trip.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
from channels_redis.utils import _wrap_close

from realtime import faults

logger = logging.getLogger(__name__)

_cleanups: set[asyncio.Task] = set()


def _cleanup_done(task: asyncio.Task) -> None:
    """Retrieve the unsubscribe's outcome: unretrieved, a failure is asyncio's
    "Task exception was never retrieved" traceback (Redis down, issue 20)."""
    _cleanups.discard(task)
    error = None if task.cancelled() else task.exception()
    if error is not None and not faults.report("layer unsubscribe", error):
        logger.error("unsubscribe failed", exc_info=error)


class _LoopLayer(RedisPubSubLoopLayer):
    async def _subscribe_to_channel(self, channel):
        # channels' consumer subscribes its own channel before the connect
        # handler runs: raising here answers the handshake with a 500 and a
        # traceback. The channel still works in process (group messages reach
        # it through this layer's group map, and nothing sends to a consumer's
        # channel directly); the connect handler meets the outage again in
        # group_add and closes with 4011.
        try:
            await super()._subscribe_to_channel(channel)
        except Exception as error:
            if not faults.report("subscribe", error):
                raise

    async def receive(self, channel):
        if channel not in self.channels:
            await self._subscribe_to_channel(channel)
        queue = self.channels[channel]
        try:
            message = await queue.get()
        except (asyncio.CancelledError, GeneratorExit):
            if self.channels.pop(channel, None) is not None:
                task = asyncio.ensure_future(self._get_shard(channel).unsubscribe(channel))
                _cleanups.add(task)
                task.add_done_callback(_cleanup_done)
            raise
        return self.channel_layer.deserialize(message)


class PubSubChannelLayer(RedisPubSubChannelLayer):
    """Adds `group_send_many`: one pipelined round trip of PUBLISHes for a batch."""

    async def group_send_many(self, items: list[tuple[str, dict]]) -> None:
        layer = self._get_layer()
        by_shard: dict[object, list[tuple[str, bytes]]] = defaultdict(list)
        for group, message in items:
            channel = layer._get_group_channel_name(group)
            by_shard[layer._get_shard(channel)].append((channel, self.serialize(message)))
        for shard, publishes in by_shard.items():
            async with shard._lock:
                shard._ensure_redis()
                pipe = shard._redis.pipeline(transaction=False)
                for channel, data in publishes:
                    pipe.publish(channel, data)
                await pipe.execute()

    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = _LoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
        return layer
