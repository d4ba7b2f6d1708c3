"""PostgreSQL as production runs it, on a private cluster (initdb on a spare port, temp dir).

- behind PgBouncer in transaction pooling mode: the hot path's server-side,
  binary-bound bulk SQL works, and many client connections share a few
  server connections;
- a restart while sockets are open and messages flow: the processes stay up,
  a send during the outage is answered `server_error` with `retry_after`
  (the client resends the same client_msg_id), /readyz names the database,
  the log says when the outage started and ended with no traceback, and
  after the restart everything works with no manual step.

The shared PostgreSQL of the machine is never restarted: the users, messages
and events of these tests live in the private cluster.
"""

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework_simplejwt.tokens import AccessToken
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from testkit import eventually_async
from testkit.infra import REPO, PgBouncer, PostgresCluster, wait_for
from testkit.servers import ServerProcess
from testkit.ws import next_of_type

pytestmark = [pytest.mark.slow]

DATABASE = "qw_private"


@pytest.fixture(scope="module")
def cluster():
    pg = PostgresCluster().init().start()
    try:
        url = pg.create_database(DATABASE)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=REPO,
            env={**_server_env(url), "PATH": "/usr/bin:/bin"},
            check=True,
        )
        yield pg
    finally:
        pg.cleanup()


def _server_env(database_url: str) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "quantumworks.settings",
    }


def private_server(database_url: str, **env: str) -> ServerProcess:
    return ServerProcess(
        DATABASE_URL=database_url,
        QW_RATE_CHAT_PER_MIN="100000",
        QW_HEARTBEAT_SECONDS="2",
        QW_DB_POOL="1",  # as in production: the psycopg pool in each process
        QW_DB_POOL_TIMEOUT="3",
        **env,
    )


class PrivateUser:
    """A user row in the private cluster, with a token the servers accept."""

    def __init__(self, pg: PostgresCluster, name: str) -> None:
        with psycopg.connect(pg.url(DATABASE), autocommit=True) as conn:
            self.id = conn.execute(
                "INSERT INTO auth_user (username, password, is_superuser, first_name, last_name,"
                " email, is_staff, is_active, date_joined) VALUES (%s, '!', false, '', '', '',"
                " false, true, now()) RETURNING id",
                [f"{name}-{time.monotonic_ns()}"],
            ).fetchone()[0]
        self.token = str(AccessToken.for_user(get_user_model()(id=self.id, is_active=True)))


def inbox_seqs(pg: PostgresCluster, user: PrivateUser) -> list[int]:
    with psycopg.connect(pg.url(DATABASE)) as conn:
        rows = conn.execute(
            "SELECT seq FROM quantumworks_event WHERE user_id = %s ORDER BY seq", [user.id]
        ).fetchall()
    return [row[0] for row in rows]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Peer:
    """One socket read by one task: chat seqs (deduped), answers by client_msg_id, other frames."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.seqs: list[int] = []
        self.answers: dict[str, asyncio.Future] = {}
        self.others: asyncio.Queue = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> "Peer":
        peer = cls(await connect(url))
        await peer.next("authenticated")
        return peer

    async def _read(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame["type"] == "chat_message":
                if not self.seqs or frame["seq"] > self.seqs[-1]:
                    self.seqs.append(frame["seq"])
            elif (
                frame["type"] in {"message_sent", "error"}
                and frame.get("client_msg_id", frame.get("ref")) in self.answers
            ):
                future = self.answers.pop(frame.get("client_msg_id", frame.get("ref")))
                future.set_result(frame)
            else:
                self.others.put_nowait(frame)

    async def next(self, frame_type: str, seconds: float = 15) -> dict:
        async with asyncio.timeout(seconds):
            while (frame := await self.others.get())["type"] != frame_type:
                pass
        return frame

    async def send(self, receiver_id: int, cmid: str) -> dict:
        """One chat message; the server's answer to it (ack or error) within 20 s."""
        future = self.answers[cmid] = asyncio.get_running_loop().create_future()
        await self.ws.send(
            json.dumps(
                {
                    "type": "chat_message",
                    "receiver_id": receiver_id,
                    "content": cmid,
                    "client_msg_id": cmid,
                }
            )
        )
        return await asyncio.wait_for(future, 20)

    async def close(self) -> None:
        self.reader.cancel()
        await self.ws.close()


async def wait_len(items: list, count: int, seconds: float = 20) -> None:
    await eventually_async(lambda: len(items) >= count, within=seconds, what=f"{count} items")


async def test_chat_through_pgbouncer_in_transaction_pooling(cluster):
    bouncer = PgBouncer(cluster.port, pool_size=3).start()
    servers = [private_server(bouncer.url(DATABASE)).start() for _ in range(2)]
    try:
        users = [PrivateUser(cluster, f"u{index}") for index in range(8)]
        peers = [
            await Peer.open(f"{servers[index % 2].ws_url}?token={user.token}")
            for index, user in enumerate(users)
        ]
        rounds = 10

        async def talk(index: int) -> None:
            for n in range(rounds):
                reply = await peers[index].send(users[index ^ 1].id, f"c{index}-{n}")
                assert reply["type"] == "message_sent", reply

        # Concurrent sends: the chat writer batches them through bulk_sql's binary arrays.
        await asyncio.gather(*(talk(index) for index in range(len(users))))
        for user, peer in zip(users, peers, strict=True):
            await wait_len(peer.seqs, 2 * rounds)
            assert peer.seqs == inbox_seqs(cluster, user) == list(range(1, 2 * rounds + 1))

        with psycopg.connect(cluster.url(DATABASE)) as conn:
            server_side = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [DATABASE],
            ).fetchone()[0]
        with psycopg.connect(
            f"postgres://postgres@127.0.0.1:{bouncer.port}/pgbouncer", autocommit=True
        ) as admin:
            cursor = admin.execute("SHOW POOLS")
            columns = [column.name for column in cursor.description]
            pools = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        pool = next(pool for pool in pools if pool["database"] == DATABASE)
        assert pool["pool_mode"] == "transaction"
        assert server_side <= 3  # the pool size: every process's connections share three

        status, body = get(f"{servers[0].http_url}/readyz")
        assert (status, body["failed"]) == (200, [])
        for peer in peers:
            await peer.close()
    finally:
        for server in servers:
            server.stop()
        bouncer.cleanup()


async def test_postgres_restart_with_open_sockets(cluster):
    servers = [private_server(cluster.url(DATABASE)).start() for _ in range(2)]
    alice, bob = PrivateUser(cluster, "alice"), PrivateUser(cluster, "bob")
    try:
        alice_ws = await Peer.open(f"{servers[0].ws_url}?token={alice.token}")
        bob_ws = await Peer.open(f"{servers[1].ws_url}?token={bob.token}")
        assert (await alice_ws.send(bob.id, "before"))["type"] == "message_sent"
        await wait_len(bob_ws.seqs, 1)

        await asyncio.to_thread(cluster.stop)
        # A send during the outage: a clear, retryable error, not a hang or a crash.
        reply = await alice_ws.send(bob.id, "during")
        assert (reply["type"], reply["code"], reply["retry_after"] > 0) == (
            "error",
            "server_error",
            True,
        )
        status, body = await asyncio.to_thread(get, f"{servers[0].http_url}/readyz")
        assert (status, body["failed"]) == (503, ["database"])
        # REST too: a 503 to retry, not a 500 with a traceback per request.
        status, body = await asyncio.to_thread(
            get, f"{servers[0].http_url}/api/me/", {"Authorization": f"Bearer {alice.token}"}
        )
        assert (status, body) == (503, {"detail": "Service temporarily unavailable."})
        # A new socket is closed on purpose with 4011 (the client backs off and resumes).
        with pytest.raises(ConnectionClosed) as refused:
            async with asyncio.timeout(15), connect(f"{servers[1].ws_url}?token={bob.token}") as ws:
                await ws.recv()
        assert refused.value.rcvd.code == 4011
        await alice_ws.ws.send(json.dumps({"type": "ping"}))
        await alice_ws.next("pong")  # the socket and the process are still up
        assert all(server.process.poll() is None for server in servers)

        await asyncio.to_thread(cluster.start)
        # The client resends the same client_msg_id after retry_after until it is stored.
        deadline = time.monotonic() + 30
        while (reply := await alice_ws.send(bob.id, "during"))["type"] != "message_sent":
            assert reply["code"] == "server_error" and time.monotonic() < deadline
            await asyncio.sleep(reply["retry_after"])
        await wait_len(bob_ws.seqs, 2)
        assert (await alice_ws.send(bob.id, "after"))["type"] == "message_sent"
        await wait_len(bob_ws.seqs, 3)
        assert bob_ws.seqs == inbox_seqs(cluster, bob) == [1, 2, 3]
        # Heartbeats go on for sockets that lived through the outage.
        await bob_ws.next("heartbeat")

        # New sockets and readiness work again with no manual step.
        await asyncio.to_thread(
            wait_for,
            lambda: get(f"{servers[1].http_url}/readyz")[0] == 200,
            seconds=15,
            what="ready",
        )
        async with connect(f"{servers[1].ws_url}?token={alice.token}&last_seq=0") as again:
            resumed = await next_of_type(again, "resumed")
            assert resumed["count"] == 3  # alice's own three messages, replayed
        await alice_ws.close()
        await bob_ws.close()
        # The outage is in each process's log as an outage (realtime.faults):
        # where it started, and that it ended; no traceback.
        for server in servers:
            output = server.wait_for_output("postgresql reachable again", timeout=15)
            assert "Traceback" not in output, output[-4000:]
        assert "postgresql unreachable (chat send:" in servers[0].output()
    finally:
        for server in servers:
            server.stop()
