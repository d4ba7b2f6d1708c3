"""Helpers for tests that talk to a real server with the `websockets` client."""

import asyncio
import json

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def next_of_type(ws, frame_type: str, timeout: float = 5) -> dict:
    """The next frame of a type from a real socket, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == frame_type:
                return frame


class ResumingReader:
    """What the shipped client does: dedupe by seq, reconnect with last_seq when cut."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.seqs: list[int] = []
        self.raw = 0
        self.reconnects = 0
        self.online = asyncio.Event()
        self.task = asyncio.create_task(self.run())

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    async def run(self) -> None:
        while True:
            try:
                async with connect(f"{self.url}?token={self.token}&last_seq={self.last_seq}") as ws:
                    async for text in ws:
                        frame = json.loads(text)
                        if frame.get("type") == "authenticated":
                            self.online.set()
                        if frame.get("type") == "chat_message":
                            self.raw += 1
                            if frame["seq"] > self.last_seq:
                                self.seqs.append(frame["seq"])
            except (ConnectionClosed, OSError):
                pass
            self.online.clear()
            self.reconnects += 1
            await asyncio.sleep(0.2)

    async def wait_for(self, count: int, seconds: float = 30) -> None:
        async with asyncio.timeout(seconds):
            while len(self.seqs) < count:  # noqa: ASYNC110 - polling a list with a deadline
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
