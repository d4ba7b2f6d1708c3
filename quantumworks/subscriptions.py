"""`subscribe` / `unsubscribe` to `task:{id}`, `project:{id}`, `room:{id}` (SPEC §5 Groups)."""

from __future__ import annotations

import re
from typing import Any

from quantumworks.db import run_db
from quantumworks.protocol import FrameError, require_str
from quantumworks.realtime import project_group, room_group, task_group


def _can_subscribe(kind: str, object_id: int, user_id: int, is_staff: bool) -> bool:
    if kind == "task":
        from tasks.selectors import user_can_view_task

        return user_can_view_task(user_id=user_id, is_staff=is_staff, task_id=object_id)
    if kind == "project":
        from tasks.selectors import user_can_view_project

        return user_can_view_project(user_id=user_id, is_staff=is_staff, project_id=object_id)
    if kind == "room":
        from chat.selectors import user_is_room_member

        return user_is_room_member(user_id=user_id, room_id=object_id)
    return False


GROUP_OF_KIND = {"task": task_group, "project": project_group, "room": room_group}


# ASCII digits only: str.isdigit() accepts "²" and "①", which int() refuses,
# and int() accepts "١٢"; 18 digits always fit a bigint.
_CHANNEL = re.compile(rf"({'|'.join(GROUP_OF_KIND)}):([0-9]{{1,18}})")


def parse_channel(channel: str) -> tuple[str, int] | None:
    match = _CHANNEL.fullmatch(channel)
    if match is None:
        return None
    return match[1], int(match[2])


async def subscribe(consumer, frame: dict[str, Any]) -> None:
    channel = require_str(frame, "channel")
    parsed = parse_channel(channel)
    # Unknown and forbidden get the same answer: no enumeration of ids.
    if parsed is None or not await run_db(_can_subscribe)(
        parsed[0], parsed[1], consumer.user_id, consumer.is_staff
    ):
        raise FrameError("forbidden", "you cannot subscribe to this channel")
    group = GROUP_OF_KIND[parsed[0]](parsed[1])
    await consumer.channel_layer.group_add(group, consumer.channel_name)
    consumer.subscriptions.add(group)
    await consumer.send_frame({"type": "subscribed", "channel": channel})


async def unsubscribe(consumer, frame: dict[str, Any]) -> None:
    channel = require_str(frame, "channel")
    parsed = parse_channel(channel)
    if parsed is not None:
        group = GROUP_OF_KIND[parsed[0]](parsed[1])
        if group in consumer.subscriptions:
            consumer.subscriptions.discard(group)
            await consumer.channel_layer.group_discard(group, consumer.channel_name)
    await consumer.send_frame({"type": "unsubscribed", "channel": channel})


HANDLERS = {"subscribe": subscribe, "unsubscribe": unsubscribe}
