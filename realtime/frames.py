"""The text of frames on the wire: one JSON encoder, one timestamp format."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with a Z, the one timestamp format on the wire."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dumps(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


def event_frame_text(seq: int, event_type: str, payload: dict[str, Any]) -> str:
    """The wire text of a durable event: live, replayed and repaired alike."""
    return dumps({"type": event_type, "seq": seq, **payload})
