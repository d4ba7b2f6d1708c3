"""Shared parts of the bench scripts: the database, users, server processes, clients.

Everything here talks to real local services over loopback: PostgreSQL (the
bench's own database, default `qw_bench`), Redis (its own channel prefix,
`qwbench`) and server processes started with `python -m servers`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from testkit.servers import spawn_server, wait_healthy

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable  # the venv's, as `make bench` runs it
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- environment and database --------------------------------------------------
def bench_env(*, db_name: str, redis_url: str, prefix: str, pg_port: int = 5432) -> dict[str, str]:
    """The environment of the servers and of this script (same DB, layer prefix, token life)."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pg_port}/{db_name}",
            "REDIS_URL": redis_url,
            "SECRET_KEY": "qw-bench-secret-not-for-production-0123456789abcdef",
            "QW_CHANNEL_PREFIX": prefix,
            "QW_RATE_CHAT_PER_MIN": "1000000",
            "QW_ACCESS_TOKEN_MINUTES": "600",
            "DJANGO_SETTINGS_MODULE": "quantumworks.settings",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("DEBUG", None)
    return env


def prepare_database(env: dict[str, str], *, db_name: str, pg_port: int = 5432) -> None:
    """Create the bench database if missing and migrate it."""
    import psycopg

    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{pg_port}/postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{db_name}"')
    subprocess.run(
        [str(PYTHON), "manage.py", "migrate", "--noinput", "-v0"],
        cwd=REPO,
        env=env,
        check=True,
    )


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def reset_bench_data(*, db_name: str) -> None:
    """Empty the bench database's users (and by cascade messages, events, inboxes)."""
    from django.db import connection

    # Only ever on a database of our own: TRUNCATE … CASCADE empties every table
    # that points at a user.
    assert "bench" in db_name, db_name
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE auth_user RESTART IDENTITY CASCADE")
    connection.close()


def flush_redis_prefix(redis_url: str, prefix: str) -> int:
    """Delete the channel layer and rate-limit keys a previous run left under our prefix."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()
    return len(keys)


def layer_backlog(redis_url: str, prefix: str) -> int:
    """Layer messages waiting in Redis for the server processes to receive them.

    channels-redis keeps one sorted set per process (`<prefix>specific.<id>!`);
    a process pops one message per round trip, so a growing set means the
    receive side is behind.
    """
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return sum(
            client.zcard(key)
            for key in client.scan_iter(match=f"{prefix}specific.*", count=1000)
            if not key.endswith(b"$inflight")
        )
    finally:
        client.close()


@dataclass(frozen=True)
class BenchUser:
    id: int
    token: str


def create_users(count: int, *, tag: str, is_staff: bool = False) -> list[BenchUser]:
    """Bulk-create users (one password hash for all) and mint long-lived access tokens."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from rest_framework_simplejwt.tokens import AccessToken

    user_model = get_user_model()
    password = make_password("bench-password")
    users = user_model.objects.bulk_create(
        [
            user_model(username=f"{tag}-{index}", password=password, email="", is_staff=is_staff)
            for index in range(count)
        ]
    )
    result = [BenchUser(id=user.pk, token=str(AccessToken.for_user(user))) for user in users]
    connection.close()
    return result


# --- measurements ----------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces; the fields after ")" are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def scrape_counters(port: int, names: tuple[str, ...]) -> dict[str, float] | None:
    """Selected Prometheus samples of one server (`/metrics`), None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    values: dict[str, float] = {}
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample in names:
            values[sample] = float(value)
    return values


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f}ms"


async def wait_until(predicate: Callable[[], bool], *, seconds: float) -> bool:
    """Poll `predicate` every 0.1 s; False if it is still false after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.1)


def command_line() -> str:
    """The command as typed from the repository root (for the report)."""
    return " ".join([os.path.relpath(sys.executable, REPO), *sys.argv])


# --- server processes ---------------------------------------------------------
@dataclass
class ServerInstance:
    """One life of a server process: from its start to its kill or stop."""

    name: str  # e.g. "A#2": server A, second life
    port: int
    process: subprocess.Popen
    log_path: Path
    started_at: float
    ready_at: float | None = None
    ended_at: float | None = None
    cpu_at_ready: float | None = None
    cpu_at_end: float | None = None
    killed: bool = False
    persisted: int = 0  # non-duplicate acks this life sent to clients
    duplicate_acks: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_now(self) -> float | None:
        return proc_cpu_seconds(self.pid)

    def cpu_used(self) -> float | None:
        """CPU seconds since it was ready (start-up, imports and migrations check excluded)."""
        end = self.cpu_at_end if self.cpu_at_end is not None else self.cpu_now()
        if end is None or self.cpu_at_ready is None:
            return None
        return end - self.cpu_at_ready

    def seconds_alive(self, until: float) -> float:
        start = self.ready_at or self.started_at
        return max((self.ended_at or until) - start, 1e-9)

    def print_problems(self, *, limit: int = 3) -> None:
        for line in self.log_problems()[:limit]:
            print(f"    {line[:300]}")

    def log_problems(self) -> list[str]:
        """Lines of its log that say something went wrong."""
        markers = ("Traceback", " WARNING ", " ERROR ", " CRITICAL ", "gap repair")
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if any(marker in line for marker in markers)]


class ServerSlot:
    """A port behind the (imaginary) load balancer; it may be killed and restarted."""

    def __init__(
        self,
        *,
        label: str,
        port: int,
        env: dict[str, str],
        log_dir: Path,
        launcher: tuple[str, ...] = (),
        server_args: tuple[str, ...] = (),
        command: tuple[str, ...] | None = None,
    ) -> None:
        self.label = label
        self.port = port
        self.env = env
        self.log_dir = log_dir
        self.launcher = launcher  # e.g. ("taskset", "-c", "1"): pins the server to a core
        self.server_args = server_args  # extra `python -m servers` options
        self.command = command  # another server than ours (bench/rawlimit.py), port included
        self.lives: list[ServerInstance] = []

    @property
    def current(self) -> ServerInstance | None:
        return self.lives[-1] if self.lives else None

    @property
    def up(self) -> bool:
        life = self.current
        return life is not None and life.ready_at is not None and life.ended_at is None

    def start(self) -> ServerInstance:
        name = f"{self.label}#{len(self.lives) + 1}"
        log_path = self.log_dir / f"server-{name.replace('#', '-')}-{self.port}.log"
        with log_path.open("wb") as log:
            # A new session: a Ctrl-C of the bench does not hit the servers first.
            if self.command is None:
                process = spawn_server(
                    self.port,
                    env=self.env,
                    log=log,
                    args=self.server_args,
                    prefix=self.launcher,
                    new_session=True,
                )
            else:
                process = subprocess.Popen(
                    [*self.launcher, *self.command],
                    cwd=REPO,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        life = ServerInstance(
            name=name,
            port=self.port,
            process=process,
            log_path=log_path,
            started_at=time.monotonic(),
        )
        self.lives.append(life)
        return life

    def wait_ready(self, *, timeout: float = 60) -> ServerInstance:
        life = self.current
        assert life is not None
        wait_healthy(
            life.process, self.port, timeout=timeout, describe=lambda: f"see {life.log_path}"
        )
        life.ready_at = time.monotonic()
        life.cpu_at_ready = life.cpu_now()
        return life

    def kill(self) -> ServerInstance:
        """SIGKILL the current life (no graceful close: clients see a dropped TCP)."""
        life = self.current
        assert life is not None and life.ended_at is None
        life.cpu_at_end = life.cpu_now()
        life.process.send_signal(signal.SIGKILL)
        life.process.wait(timeout=10)
        life.ended_at = time.monotonic()
        life.killed = True
        return life

    def stop(self) -> None:
        """SIGTERM (4012 to every socket), then SIGKILL if it is still there after 8 s."""
        life = self.current
        if life is None or life.ended_at is not None:
            return
        life.cpu_at_end = life.cpu_now()
        if life.process.poll() is None:
            life.process.send_signal(signal.SIGTERM)
            try:
                life.process.wait(timeout=8)
            except subprocess.TimeoutExpired:
                life.process.send_signal(signal.SIGKILL)
                life.process.wait(timeout=10)
        life.ended_at = time.monotonic()


def start_servers(slots: list[ServerSlot]) -> None:
    for slot in slots:
        slot.start()
    for slot in slots:
        slot.wait_ready()


def stop_servers(slots: list[ServerSlot]) -> None:
    for slot in slots:
        try:
            slot.stop()
        except Exception as error:
            print(f"stopping {slot.label} failed: {error!r}", file=sys.stderr)


def new_log_dir(kind: str) -> Path:
    path = Path(f"/tmp/qwbench-{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- a run's setup ------------------------------------------------------------------
def add_setup_arguments(parser: argparse.ArgumentParser, *, users: int, port_base: int) -> None:
    parser.add_argument("--users", type=int, default=users, help="users = sockets (even: pairs)")
    parser.add_argument("--port-base", type=int, default=port_base, help="first server port")
    parser.add_argument("--db", default="qw_bench", help="the bench's own database (emptied!)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="qwbench", help="channel-layer/Redis key prefix")


def check_setup_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, servers: int
) -> None:
    if args.users < 2 or args.users % 2:
        parser.error("--users must be an even number ≥ 2")
    if args.port_base < 8100 or args.port_base + servers - 1 > 8199:
        parser.error("server ports must stay within 8100–8199")
    if "bench" not in args.db:
        parser.error("--db must name a bench database (its users are truncated)")


@dataclass
class RunSetup:
    env: dict[str, str]
    log_dir: Path
    users: list[BenchUser]
    slots: list[ServerSlot]


def prepare_run(args: argparse.Namespace, *, kind: str, labels: list[str]) -> RunSetup:
    """A migrated, emptied bench database, fresh users, and (not yet started) server slots."""
    pg_port = getattr(args, "pg_port", 5432)  # chaos.py: its own restartable cluster
    env = bench_env(db_name=args.db, redis_url=args.redis_url, prefix=args.prefix, pg_port=pg_port)
    log_dir = new_log_dir(kind)
    prepare_database(env, db_name=args.db, pg_port=pg_port)
    setup_django(env)
    reset_bench_data(db_name=args.db)
    flush_redis_prefix(args.redis_url, args.prefix)
    users = create_users(args.users, tag=f"{kind}{os.getpid()}")
    slots = [
        ServerSlot(label=label, port=args.port_base + index, env=env, log_dir=log_dir)
        for index, label in enumerate(labels)
    ]
    return RunSetup(env=env, log_dir=log_dir, users=users, slots=slots)


# --- the client ---------------------------------------------------------------------
@dataclass
class Outgoing:
    client_msg_id: str
    receiver_id: int
    content: str
    first_sent: float | None = None  # monotonic time of the first send
    sends: int = 0


@dataclass
class Received:
    seq: int
    message_id: int | None
    type: str


@dataclass
class ClientStats:
    connects: int = 0
    failed_connects: int = 0
    disconnects: int = 0
    dropped_by_us: int = 0
    raw_duplicates: int = 0  # durable frames whose seq we had already seen
    reordered: int = 0  # a new seq that arrived after a higher one
    gaps_on_wire: int = 0  # a seq arrived more than one past our contiguous watermark
    resumed_frames: int = 0
    replayed_events: int = 0
    resync_required: int = 0
    resends: int = 0
    errors: dict[str, int] = field(default_factory=dict)


AckHook = Callable[["BenchClient", dict[str, Any], float], None]
EventHook = Callable[["BenchClient", dict[str, Any], float], None]


class BenchClient:
    """One user with at most one socket at a time, like the shipped JS client.

    - keeps every durable seq it has seen; dedupes by seq; reconnects with
      `last_seq` = its contiguous watermark (every seq up to it was seen);
    - keeps every chat message it sent until it is acked, and resends the
      unacked ones (same `client_msg_id`) after each reconnect.
    """

    def __init__(
        self,
        *,
        user: BenchUser,
        partner_id: int,
        pick_slot: Callable[[], ServerSlot],
        on_ack: AckHook | None = None,
        on_event: EventHook | None = None,
        on_connect: Callable[[BenchClient, ServerInstance], None] | None = None,
    ) -> None:
        self.user = user
        self.partner_id = partner_id
        self.pick_slot = pick_slot
        self.on_ack = on_ack
        self.on_event = on_event
        self.on_connect = on_connect
        self.stats = ClientStats()
        self.watermark = 0
        self.max_seq = 0
        self.seen: set[int] = set()
        self.received: list[Received] = []  # first occurrence of each seq, in arrival order
        self.pending: dict[str, Outgoing] = {}  # unacked, in first-send order
        self.acks: dict[str, tuple[int, bool, str]] = {}  # cmid -> (message_id, dup, server)
        self.queue: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.ws: Any = None
        self.instance: ServerInstance | None = None
        self.authenticated = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.ws is not None and self.authenticated.is_set()

    # --- what the bench asks ---------------------------------------------------
    def submit(self, outgoing: Outgoing) -> None:
        self.pending[outgoing.client_msg_id] = outgoing
        if self.ws is not None:
            self.queue.append(outgoing.client_msg_id)
            self.wakeup.set()

    def drop(self) -> bool:
        """Cut the socket without a close handshake (what a flaky network does)."""
        ws = self.ws
        if ws is None:
            return False
        self.stats.dropped_by_us += 1
        ws.transport.abort()
        return True

    # --- the connection loop ------------------------------------------------------
    async def run(self, stop: asyncio.Event, *, backoff: tuple[float, float] = (0.05, 0.5)) -> None:
        from websockets.asyncio.client import connect

        while not stop.is_set():
            slot = self.pick_slot()
            instance = slot.current
            url = (
                f"ws://127.0.0.1:{slot.port}/ws/?token={self.user.token}&last_seq={self.watermark}"
            )
            opened = False
            try:
                async with connect(
                    url,
                    compression=None,
                    ping_interval=None,
                    open_timeout=10,
                    close_timeout=2,
                    max_queue=None,
                    proxy=None,
                ) as ws:
                    opened = True
                    self.ws = ws
                    self.instance = instance
                    self.stats.connects += 1
                    await self._serve(ws, stop)
            except asyncio.CancelledError:
                raise
            except Exception:
                pass
            finally:
                self.ws = None
                self.authenticated.clear()
            if stop.is_set():
                break
            if opened:
                self.stats.disconnects += 1
            else:
                self.stats.failed_connects += 1
            await asyncio.sleep(random.uniform(*backoff))

    async def _serve(self, ws: Any, stop: asyncio.Event) -> None:
        sender = asyncio.create_task(self._send_loop(ws))
        stopper = asyncio.create_task(stop.wait())
        reader = asyncio.create_task(self._read_loop(ws))
        try:
            done, _ = await asyncio.wait(
                {sender, reader, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if stopper in done:
                await ws.close()
        finally:
            for task in (sender, reader, stopper):
                task.cancel()
            await asyncio.gather(sender, reader, stopper, return_exceptions=True)

    async def _send_loop(self, ws: Any) -> None:
        await self.authenticated.wait()
        # Everything unacked goes again, in first-send order, with its original id.
        self.queue = deque(self.pending)
        while True:
            while self.queue:
                cmid = self.queue.popleft()
                outgoing = self.pending.get(cmid)
                if outgoing is None:
                    continue  # acked meanwhile
                if outgoing.sends:
                    self.stats.resends += 1
                else:
                    outgoing.first_sent = time.monotonic()
                outgoing.sends += 1
                await ws.send(
                    orjson.dumps(
                        {
                            "type": "chat_message",
                            "receiver_id": outgoing.receiver_id,
                            "content": outgoing.content,
                            "client_msg_id": cmid,
                        }
                    ).decode()
                )
            self.wakeup.clear()
            await self.wakeup.wait()

    async def _read_loop(self, ws: Any) -> None:
        async for text in ws:
            now = time.monotonic()
            frame = orjson.loads(text)
            kind = frame.get("type")
            if "seq" in frame:
                self._durable(frame, now)
            elif kind == "message_sent":
                self._ack(frame, now)
            elif kind == "authenticated":
                self.authenticated.set()
                if self.on_connect is not None and self.instance is not None:
                    self.on_connect(self, self.instance)
            elif kind == "resumed":
                self.stats.resumed_frames += 1
                self.stats.replayed_events += frame.get("count", 0)
            elif kind == "resync_required":
                self.stats.resync_required += 1
            elif kind == "error":
                self._error(frame)

    def _durable(self, frame: dict[str, Any], now: float) -> None:
        seq = frame["seq"]
        if seq in self.seen:
            self.stats.raw_duplicates += 1
            return
        if seq > self.watermark + 1:
            self.stats.gaps_on_wire += 1
        if seq < self.max_seq:
            self.stats.reordered += 1
        self.seen.add(seq)
        self.max_seq = max(self.max_seq, seq)
        while self.watermark + 1 in self.seen:
            self.watermark += 1
        self.received.append(Received(seq, frame.get("message_id"), frame["type"]))
        if self.on_event is not None:
            self.on_event(self, frame, now)

    def _ack(self, frame: dict[str, Any], now: float) -> None:
        cmid = frame.get("client_msg_id")
        instance = self.instance
        server = instance.name if instance else "?"
        if instance is not None:
            if frame.get("duplicate"):
                instance.duplicate_acks += 1
            else:
                instance.persisted += 1
        if cmid not in self.acks:
            self.acks[cmid] = (frame["message_id"], bool(frame.get("duplicate")), server)
        if self.on_ack is not None:
            self.on_ack(self, frame, now)
        self.pending.pop(cmid, None)

    def _error(self, frame: dict[str, Any]) -> None:
        code = frame.get("code", "?")
        self.stats.errors[code] = self.stats.errors.get(code, 0) + 1
        ref = frame.get("ref")
        if ref in self.pending and code in {"server_error", "rate_limited"}:
            # Not stored: try again on this connection a little later.
            delay = float(frame.get("retry_after") or 0.5)
            asyncio.get_running_loop().call_later(delay, self._requeue, ref)

    def _requeue(self, cmid: str) -> None:
        if cmid in self.pending and self.ws is not None:
            self.queue.append(cmid)
            self.wakeup.set()


def round_robin(slots: list[ServerSlot]) -> Callable[[], ServerSlot]:
    """Connections go to the servers in turn; a slot that is down is skipped if another is up."""
    counter = {"next": 0}

    def pick() -> ServerSlot:
        for _ in range(len(slots)):
            slot = slots[counter["next"] % len(slots)]
            counter["next"] += 1
            if slot.up:
                return slot
        slot = slots[counter["next"] % len(slots)]
        counter["next"] += 1
        return slot

    return pick


def sum_stats(clients: list[BenchClient]) -> ClientStats:
    total = ClientStats()
    for client in clients:
        for name in (
            "connects",
            "failed_connects",
            "disconnects",
            "dropped_by_us",
            "raw_duplicates",
            "reordered",
            "gaps_on_wire",
            "resumed_frames",
            "replayed_events",
            "resync_required",
            "resends",
        ):
            setattr(total, name, getattr(total, name) + getattr(client.stats, name))
        for code, count in client.stats.errors.items():
            total.errors[code] = total.errors.get(code, 0) + count
    return total
