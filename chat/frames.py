"""Parsers of the fields only chat frames carry (SPEC §5 chat_message, typing)."""

from __future__ import annotations

from typing import Any

from realtime.protocol import FrameError, require_int


def optional_int(frame: dict[str, Any], field: str) -> int | None:
    if frame.get(field) is None:
        return None
    return require_int(frame, field)


def optional_client_msg_id(frame: dict[str, Any]) -> str | None:
    value = frame.get("client_msg_id")
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 64
        or any(ord(char) < 32 or ord(char) == 127 for char in value)
    ):
        raise FrameError(
            "invalid_message",
            "'client_msg_id' must be a string of 1 to 64 printable characters",
        )
    return value


def one_target(frame: dict[str, Any]) -> tuple[int | None, int | None]:
    """Exactly one of `receiver_id` / `room_id`."""
    receiver_id = optional_int(frame, "receiver_id")
    room_id = optional_int(frame, "room_id")
    if (receiver_id is None) == (room_id is None):
        raise FrameError("invalid_message", "give exactly one of 'receiver_id' or 'room_id'")
    return receiver_id, room_id


def optional_attachment_ids(frame: dict[str, Any], *, limit: int) -> tuple[int, ...]:
    """`attachment_ids`: a list of at most `limit` distinct positive ids (SPEC §11)."""
    value = frame.get("attachment_ids")
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > limit
        or not all(
            isinstance(item, int) and not isinstance(item, bool) and 0 < item < 2**63
            for item in value
        )
        or len(set(value)) != len(value)
    ):
        raise FrameError(
            "invalid_message",
            f"'attachment_ids' must be a list of at most {limit} distinct attachment ids",
        )
    return tuple(value)
