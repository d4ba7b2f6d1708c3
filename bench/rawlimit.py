"""The raw Python limit `make bench` measures the server against (bench/run.py starts it).

    .venv/bin/python bench/rawlimit.py --port 8151 --database-url postgresql://…/qw_bench

A bare `websockets` server with no framework: the same wire protocol as far as
the load generator uses it (SPEC §5 `authenticated`, `chat_message` +
`message_sent`, `subscribe` + `subscribed`, `ping` → `pong`, a `heartbeat`
frame and a WebSocket ping every interval, a socket whose ping is unanswered
at the next heartbeat closed: ours keeps sockets alive the same way), a
PyJWT check of the same access token per connect and one INSERT per chat
message (psycopg, autocommit). No sequence numbers, no replay, no presence, no
outbox: what is left is the cost Python, the
`websockets` protocol and one database round trip put under any server, so the
ratio to it says how much the framework and the guarantees add.

The task status change of W3 arrives as `PATCH /api/tasks/<id>/status/` on
port + 1 (websockets answers only GET): one INSERT, one frame text, written to
every subscriber's socket with `broadcast()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from http import HTTPStatus

import jwt
import orjson
import psycopg
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

MAX_FRAME_BYTES = 64 * 1024
TABLE = "bench_raw_event"


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class RawServer:
    def __init__(self, *, secret: str, database_url: str, heartbeat: float) -> None:
        self.secret = secret
        self.database_url = database_url
        self.heartbeat = heartbeat
        self.sockets: dict[int, set[ServerConnection]] = {}
        self.subscribers: dict[str, set[ServerConnection]] = {}
        self.db: psycopg.AsyncConnection | None = None
        self.closing: set[asyncio.Future[None]] = set()

    async def start_db(self) -> None:
        self.db = await psycopg.AsyncConnection.connect(self.database_url, autocommit=True)
        await self.db.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, user_id bigint,"
            " other_id bigint, body text, client_msg_id text, at timestamptz DEFAULT now())"
        )
        await self.db.execute(f"TRUNCATE {TABLE}")

    async def insert(self, user_id: int, other_id: int, body: str, cmid: str | None) -> int:
        assert self.db is not None
        cursor = await self.db.execute(
            f"INSERT INTO {TABLE} (user_id, other_id, body, client_msg_id)"
            " VALUES (%s, %s, %s, %s) RETURNING id",
            (user_id, other_id, body, cmid),
        )
        row = await cursor.fetchone()
        assert row is not None
        return row[0]

    def user_of(self, token: str | None) -> int | None:
        if not token:
            return None
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"])
        except jwt.PyJWTError:
            return None
        if claims.get("token_type") != "access":
            return None
        try:
            return int(claims["user_id"])
        except (KeyError, TypeError, ValueError):
            return None

    @staticmethod
    def process_request(connection: ServerConnection, request):
        if request.path.startswith("/healthz"):
            return connection.respond(HTTPStatus.OK, "ok\n")
        return None

    async def handle(self, ws: ServerConnection) -> None:
        token = None
        path = ws.request.path if ws.request else ""
        if "?" in path:
            for pair in path.split("?", 1)[1].split("&"):
                key, _, value = pair.partition("=")
                if key == "token":
                    token = value
        user_id = self.user_of(token)
        if user_id is None:
            await ws.close(4001, "invalid_token")
            return
        mine = self.sockets.setdefault(user_id, set())
        mine.add(ws)
        await ws.send(
            orjson.dumps(
                {
                    "type": "authenticated",
                    "user_id": user_id,
                    "last_seq": 0,
                    "heartbeat_interval": self.heartbeat,
                    "timestamp": now_iso(),
                }
            ).decode()
        )
        try:
            async for text in ws:
                await self.on_frame(ws, user_id, text)
        except ConnectionClosed:
            pass  # e.g. closed 1011 by the keepalive (heartbeats())
        finally:
            mine.discard(ws)
            if not mine:
                self.sockets.pop(user_id, None)
            for members in self.subscribers.values():
                members.discard(ws)

    async def on_frame(self, ws: ServerConnection, user_id: int, text: str | bytes) -> None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "chat_message":
            receiver = frame.get("receiver_id")
            content = frame.get("content")
            cmid = frame.get("client_msg_id")
            if not isinstance(receiver, int) or not isinstance(content, str):
                return
            message_id = await self.insert(user_id, receiver, content, cmid)
            stamp = now_iso()
            await ws.send(
                orjson.dumps(
                    {
                        "type": "message_sent",
                        "message_id": message_id,
                        "client_msg_id": cmid,
                        "timestamp": stamp,
                        "duplicate": False,
                    }
                ).decode()
            )
            event = orjson.dumps(
                {
                    "type": "chat_message",
                    "message_id": message_id,
                    "sender_id": user_id,
                    "receiver_id": receiver,
                    "content": content,
                    "timestamp": stamp,
                    "client_msg_id": cmid,
                }
            ).decode()
            broadcast(
                [*self.sockets.get(receiver, ()), *self.sockets.get(user_id, ())],
                event,
            )
        elif kind == "subscribe" and isinstance(frame.get("channel"), str):
            self.subscribers.setdefault(frame["channel"], set()).add(ws)
            await ws.send(
                orjson.dumps({"type": "subscribed", "channel": frame["channel"]}).decode()
            )
        elif kind in ("ping", "heartbeat"):
            await ws.send(orjson.dumps({"type": "pong", "timestamp": now_iso()}).decode())

    async def heartbeats(self) -> None:
        """A heartbeat frame and a ping to every socket; one still unanswered a beat later closes.

        The same keepalive as ours (servers.ws_uvicorn rides its ping on the
        heartbeat; no ping timer per socket): a silent peer is closed within
        two heartbeats, so the raw limit pays for the same guarantee.
        """
        pongs: dict[ServerConnection, Awaitable[float]] = {}
        while True:
            await asyncio.sleep(self.heartbeat)
            text = orjson.dumps({"type": "heartbeat", "timestamp": now_iso()}).decode()
            sockets = [ws for group in self.sockets.values() for ws in group]
            broadcast(sockets, text)
            waiting, pongs = pongs, {}
            for ws in sockets:
                pong = waiting.get(ws)
                if pong is not None and not pong.done():
                    closing = asyncio.ensure_future(ws.close(1011, "keepalive ping timeout"))
                    self.closing.add(closing)
                    closing.add_done_callback(self.closing.discard)
                    continue
                with contextlib.suppress(ConnectionClosed):
                    pongs[ws] = await ws.ping()

    # --- the W3 status change: a minimal HTTP/1.1 keep-alive server ---------------
    async def http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, payload = await self.on_http(method, target, headers, body)
                data = orjson.dumps(payload)
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def on_http(self, method: str, target: str, headers: dict, body: bytes):
        parts = target.strip("/").split("/")  # api tasks <id> status
        if method != "PATCH" or len(parts) != 4 or parts[:2] != ["api", "tasks"]:
            return 404, {"detail": "not found"}
        auth = headers.get("authorization", "")
        user_id = self.user_of(auth[7:] if auth.startswith("Bearer ") else None)
        if user_id is None:
            return 401, {"detail": "invalid token"}
        task_id = int(parts[2])
        status = orjson.loads(body).get("status")
        await self.insert(user_id, task_id, status, None)
        text = orjson.dumps(
            {
                "type": "task_status_update",
                "task_id": task_id,
                "status": status,
                "updated_by": user_id,
                "timestamp": now_iso(),
            }
        ).decode()
        broadcast(self.subscribers.get(f"task:{task_id}", ()), text)
        return 200, {"id": task_id, "status": status}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="WebSocket; HTTP on port + 1")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--heartbeat", type=float, default=30)
    args = parser.parse_args()
    server = RawServer(
        secret=os.environ["SECRET_KEY"],
        database_url=args.database_url.replace("postgres://", "postgresql://", 1),
        heartbeat=args.heartbeat,
    )
    await server.start_db()
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    http = await asyncio.start_server(server.http, args.host, args.port + 1, backlog=2048)
    beats = asyncio.ensure_future(server.heartbeats())
    async with serve(
        server.handle,
        args.host,
        args.port,
        process_request=server.process_request,
        compression=None,
        max_size=MAX_FRAME_BYTES,
        ping_interval=None,  # the heartbeat pings (heartbeats()), as ours does
        ping_timeout=None,
        backlog=2048,
    ):
        print(f"raw limit ready on {args.port} at {time.strftime('%H:%M:%S')}", flush=True)
        await stop
    beats.cancel()
    http.close()


if __name__ == "__main__":
    asyncio.run(main())
