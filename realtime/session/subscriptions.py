"""`subscribe` / `unsubscribe` to `<kind>:<id>`: the kinds the apps registered (SPEC §5 Groups)."""

from __future__ import annotations

import re
from typing import Any

from realtime import registry
from realtime.db import run_db
from realtime.protocol import FrameError, require_str
from realtime.registry import SubscriptionKind

# ASCII digits only: str.isdigit() accepts "²" and "①", which int() refuses,
# and int() accepts "١٢"; 18 digits always fit a bigint.
_CHANNEL = re.compile(r"([a-z_]+):([0-9]{1,18})")


def parse_channel(channel: str) -> tuple[SubscriptionKind, int] | None:
    match = _CHANNEL.fullmatch(channel)
    if match is None or match[1] not in registry.subscription_kinds:
        return None
    return registry.subscription_kinds[match[1]], int(match[2])


async def subscribe(consumer, frame: dict[str, Any]) -> None:
    channel = require_str(frame, "channel")
    parsed = parse_channel(channel)
    # Unknown and forbidden get the same answer: no enumeration of ids.
    if parsed is None or not await run_db(parsed[0].can_subscribe)(
        consumer.user_id, consumer.is_staff, parsed[1]
    ):
        raise FrameError("forbidden", "you cannot subscribe to this channel")
    group = parsed[0].group(parsed[1])
    await consumer.channel_layer.group_add(group, consumer.channel_name)
    consumer.subscriptions.add(group)
    await consumer.send_frame({"type": "subscribed", "channel": channel})


async def unsubscribe(consumer, frame: dict[str, Any]) -> None:
    channel = require_str(frame, "channel")
    parsed = parse_channel(channel)
    if parsed is not None:
        group = parsed[0].group(parsed[1])
        if group in consumer.subscriptions:
            consumer.subscriptions.discard(group)
            await consumer.channel_layer.group_discard(group, consumer.channel_name)
    await consumer.send_frame({"type": "unsubscribed", "channel": channel})


HANDLERS = {"subscribe": subscribe, "unsubscribe": unsubscribe}
