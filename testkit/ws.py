"""Helpers for tests that talk to a real server with the `websockets` client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from testkit.waiting import eventually_async


async def next_of_type(ws, frame_type: str, timeout: float = 5) -> dict:
    """The next frame of a type from a real socket, skipping others."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == frame_type:
                return frame


async def send_chat(ws, receiver_id: int, n: int) -> dict:
    """Send chat message `n` (client_msg_id `c{n}`); its `message_sent` or `error` frame."""
    await ws.send(
        json.dumps(
            {
                "type": "chat_message",
                "receiver_id": receiver_id,
                "content": f"m{n}",
                "client_msg_id": f"c{n}",
            }
        )
    )
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if frame["type"] == "message_sent" and frame["client_msg_id"] == f"c{n}":
            return frame
        if frame["type"] == "error" and frame.get("ref") == f"c{n}":
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
        await eventually_async(
            lambda: len(self.seqs) >= count, within=seconds, what=f"{count} chat messages"
        )

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class RawClient:
    """A WebSocket client on a plain socket that reads only when told to.

    The `websockets` connection reads in the background; this one leaves
    everything the server sends in the kernel until `read_frames`, like a
    browser tab that stopped reading, and can send what a well-behaved client
    never would (text frames that are not UTF-8). A small receive buffer makes
    the kernel hold little, so the server's own buffering shows.
    """

    def __init__(self, url: str, *, receive_buffer: int = 16 * 1024) -> None:
        self.url = url
        self.receive_buffer = receive_buffer
        self.protocol = ClientProtocol(parse_uri(url), max_size=None)
        self.sock: socket.socket | None = None
        self.response: Response | None = None

    async def connect(self, timeout: float = 10) -> RawClient:
        uri = parse_uri(self.url)
        loop = asyncio.get_running_loop()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        self.sock.setblocking(False)
        async with asyncio.timeout(timeout):
            await loop.sock_connect(self.sock, (uri.host, uri.port))
            self.protocol.send_request(self.protocol.connect())
            await self._flush()
            while self.protocol.handshake_exc is None and self.response is None:
                await self._receive_some()
                for event in self.protocol.events_received():
                    if isinstance(event, Response):
                        self.response = event
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc
        return self

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        for data in self.protocol.data_to_send():
            if data:
                await loop.sock_sendall(self.sock, data)

    async def _receive_some(self) -> bool:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        return bool(data)

    async def send_text(self, text: str | bytes) -> None:
        self.protocol.send_text(text.encode() if isinstance(text, str) else text)
        await self._flush()

    async def send_binary(self, data: bytes) -> None:
        self.protocol.send_binary(data)
        await self._flush()

    async def read_frames(self, timeout: float = 10) -> list[Frame]:
        """Read until the connection ends; every frame the server sent, close included."""
        frames: list[Frame] = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    more = await self._receive_some()
                except ConnectionError:
                    more = False
                    self.protocol.receive_eof()
                for event in self.protocol.events_received():
                    if isinstance(event, Frame):
                        frames.append(event)
                await self._flush_quietly()
                if not more:
                    return frames

    async def _flush_quietly(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._flush()

    @staticmethod
    def close_of(frames: list[Frame]) -> tuple[int, str] | None:
        """(code, reason) of the server's close frame, if one arrived."""
        from websockets.frames import Close

        for frame in frames:
            if frame.opcode is Opcode.CLOSE:
                close = Close.parse(frame.data)
                return close.code, close.reason
        return None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
