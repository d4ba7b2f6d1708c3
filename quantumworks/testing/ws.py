"""Helpers for tests that talk to a real server with the `websockets` client."""

import asyncio
import json


async def next_of_type(ws, frame_type: str, timeout: float = 5) -> dict:
    """The next frame of a type from a real socket, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == frame_type:
                return frame
