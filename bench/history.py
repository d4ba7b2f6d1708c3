"""History-heavy benchmark: do a connect, the conversation list and a send cost the same
for a user with a year of chat as for one without?

    taskset -c 0 .venv/bin/python bench/history.py            # load both databases, measure both
    taskset -c 0 .venv/bin/python bench/history.py --skip-load  # measure what is loaded

Two databases of our own (never the test or demo one): `<db>_empty` holds the
same users, rooms and memberships and one message per conversation the history
has (so both have the same number of conversations; only the history differs),
`<db>` holds ~1,000,000 messages over 1,000 users (a few power users with
100,000+ each), ~1,000,000 inbox events and 200,000 notifications, bulk-loaded
with COPY through psycopg 3, then the per-user conversation state rebuilt by
`manage.py rebuild_conversations` (when the code has it).

Both servers run at once (pinned to core 1 with `taskset -c 1`; run this
script on core 0) and every workload alternates between them, so both columns
meet the same machine load: (a) connects of the power users (TCP connect →
`authenticated`, then ping → pong once the presence work is done; p50/p99,
server and PostgreSQL CPU per connect-and-close), (b) chat among the power
users (100 msgs/s, one server at a time in A B B A halves, sent → delivered
p50/p99, CPU per message), (c) REST reads (conversation list + first history
page, p50/p99, queries per request). Prints a two-column table, one JSON line,
and the EXPLAIN ANALYZE of each read (docs/history-performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import bench_env  # bench/ is the script's own directory

from testkit.servers import spawn_server, wait_healthy

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable  # the venv's, as `make bench-history` runs it
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SECRET = "qw-bench-secret-not-for-production-0123456789abcdef"
PG = "postgresql://postgres@127.0.0.1:5432"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)


def env_for(db_name: str, prefix: str) -> dict[str, str]:
    return bench_env(
        db_name=db_name,
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        prefix=prefix,
    )


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


def proc_cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- the data ---------------------------------------------------------------------
class Plan:
    """Who talks to whom: the same graph in both databases."""

    def __init__(self, *, users: int, power: int, seed: int = 8) -> None:
        rng = random.Random(seed)
        self.user_ids = list(range(1, users + 1))
        self.power_ids = self.user_ids[:power]
        normal = self.user_ids[power:]
        pairs: set[tuple[int, int]] = set()
        for p in self.power_ids:  # each power user: the other power users + ~45 others
            for q in self.power_ids:
                if q != p:
                    pairs.add((min(p, q), max(p, q)))
            for q in rng.sample(normal, 45):
                pairs.add((p, q))
        for u in normal:  # everyone else: ~5 counterparts
            for q in rng.sample(normal, 5):
                if q != u:
                    pairs.add((min(u, q), max(u, q)))
        self.pairs = sorted(pairs)
        self.rooms: list[list[int]] = []
        for index in range(50):
            members = rng.sample(normal, 9)
            members.insert(0, self.power_ids[index % power])
            self.rooms.append(members)


def drop_indexes(conn, table: str) -> list[str]:
    """Secondary indexes not backing a constraint: rebuilt after COPY (much faster)."""
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        [table],
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in rows]


def load(db_name: str, plan: Plan, *, history: bool, args) -> dict[str, float]:
    import psycopg

    rng = random.Random(88)
    timings: dict[str, float] = {}
    started = time.monotonic()
    with psycopg.connect(f"{PG}/{db_name}") as conn:
        # No FK triggers while loading (consistent by construction): COPY and the
        # index builds run without a check per row.
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "TRUNCATE auth_user, chat_room, quantumworks_userinbox RESTART IDENTITY CASCADE"
        )
        password = "pbkdf2_sha256$1000000$bench$Qk0bench0000000000000000000000000000000000="
        with conn.cursor().copy(
            "COPY auth_user (id, password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined) FROM STDIN"
        ) as copy:
            for uid in plan.user_ids:
                copy.write_row((uid, password, False, f"hist-{uid}", "", "", "", False, True, NOW))
        with conn.cursor().copy(
            "COPY chat_room (id, name, created_by_id, created_at) FROM STDIN"
        ) as copy:
            for index, members in enumerate(plan.rooms, start=1):
                copy.write_row((index, f"room {index}", members[0], NOW - YEAR))
        with conn.cursor().copy(
            "COPY chat_roommembership (room_id, user_id, joined_at, last_read_message_id) "
            "FROM STDIN"
        ) as copy:
            for index, members in enumerate(plan.rooms, start=1):
                for uid in members:
                    copy.write_row((index, uid, NOW - YEAR, 0))

        # Messages: (time, sender, receiver, room). Power users' pairs carry most.
        power = set(plan.power_ids)
        rows: list[tuple[float, int, int | None, int | None]] = []
        if history:
            power_pairs = [pair for pair in plan.pairs if pair[0] in power or pair[1] in power]
            power_set = set(power_pairs)
            other_pairs = [pair for pair in plan.pairs if pair not in power_set]
            per_power = args.power_messages
            room_total = args.messages // 10
            power_total = per_power * len(plan.power_ids) * 48 // 50  # pairs among power overlap
            for _ in range(power_total):
                a, b = power_pairs[rng.randrange(len(power_pairs))]
                s, r = (a, b) if rng.random() < 0.5 else (b, a)
                rows.append((rng.random(), s, r, None))
            for _ in range(max(0, args.messages - power_total - room_total)):
                a, b = other_pairs[rng.randrange(len(other_pairs))]
                s, r = (a, b) if rng.random() < 0.5 else (b, a)
                rows.append((rng.random(), s, r, None))
            for _ in range(room_total):
                room = rng.randrange(len(plan.rooms))
                rows.append((rng.random(), rng.choice(plan.rooms[room]), None, room + 1))
        for a, b in plan.pairs:  # every conversation has at least one message
            rows.append((rng.random(), a, b, None))
        for index, members in enumerate(plan.rooms, start=1):
            rows.append((rng.random(), members[1], None, index))
        rows.sort()
        timings["generate_s"] = time.monotonic() - started

        started = time.monotonic()
        index_sql = drop_indexes(conn, "chat_chatmessage")
        unread_after = 0.997  # the last ~0.3 % of the year is unread
        with conn.cursor().copy(
            "COPY chat_chatmessage (sender_id, receiver_id, room_id, content, created_at, "
            "delivered_at, read_at, is_hidden) FROM STDIN"
        ) as copy:
            for moment, s, r, room in rows:
                at = NOW - YEAR * (1 - moment)
                read = at if (moment < unread_after or room is not None) else None
                copy.write_row((s, r, room, f"message at {moment:.6f}", at, at, read, False))
        for sql in index_sql:
            conn.execute(sql)
        timings["messages"] = len(rows)
        timings["messages_s"] = time.monotonic() - started

        started = time.monotonic()
        if history:
            index_sql = drop_indexes(conn, "quantumworks_event")
            counts = dict.fromkeys(plan.user_ids, 0)
            per_power_events = args.events // 2 // len(plan.power_ids)
            for uid in plan.power_ids:
                counts[uid] = per_power_events
            others = [uid for uid in plan.user_ids if uid not in power]
            for uid in others:
                counts[uid] = (args.events - per_power_events * len(plan.power_ids)) // len(others)
            payload = orjson.dumps({"message_id": 1, "sender_id": 2, "content": "x"}).decode()
            with conn.cursor().copy(
                "COPY quantumworks_event (user_id, seq, type, payload, created_at) FROM STDIN"
            ) as copy:
                for uid, count in counts.items():
                    for seq in range(1, count + 1):
                        copy.write_row((uid, seq, "chat_message", payload, NOW))
            with conn.cursor().copy(
                "COPY quantumworks_userinbox (user_id, last_seq) FROM STDIN"
            ) as copy:
                for uid, count in counts.items():
                    copy.write_row((uid, count))
            for sql in index_sql:
                conn.execute(sql)
            timings["events"] = sum(counts.values())

            index_sql = drop_indexes(conn, "notifications_notification")
            total = 0
            with conn.cursor().copy(
                "COPY notifications_notification (user_id, notification_type, title, message, "
                "link, created_at, read_at) FROM STDIN"
            ) as copy:
                for uid in plan.user_ids:
                    count = 20_000 if uid in power else 100
                    for index in range(count):
                        read = None if index >= count - 5 else NOW
                        copy.write_row((uid, "info", f"n{index}", "", "", NOW, read))
                        total += 1
            for sql in index_sql:
                conn.execute(sql)
            timings["notifications"] = total
        timings["events_s"] = time.monotonic() - started
        for table in ("auth_user", "chat_room", "chat_roommembership"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return timings


def prepare(db_name: str, env: dict[str, str]) -> None:
    import psycopg

    assert "bench" in db_name, db_name  # only ever a database of our own
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone():
            conn.execute(f'CREATE DATABASE "{db_name}"')
    subprocess.run(
        [str(PYTHON), "manage.py", "migrate", "--noinput", "-v0"], cwd=REPO, env=env, check=True
    )


def rebuild_state(env: dict[str, str]) -> float | None:
    """`manage.py rebuild_conversations` if this code has it; its seconds."""
    if not (REPO / "chat" / "management" / "commands" / "rebuild_conversations.py").exists():
        return None
    started = time.monotonic()
    subprocess.run(
        [str(PYTHON), "manage.py", "rebuild_conversations"], cwd=REPO, env=env, check=True
    )
    return time.monotonic() - started


# --- in-process reads: queries and their plans -------------------------------------
def inspect(db_name: str, power_ids: list[int], counterpart: dict[int, int]) -> dict:
    """Run each read through Django, count its queries and EXPLAIN ANALYZE each one."""
    os.environ.update(env_for(db_name, "h8hist"))
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework_simplejwt.tokens import AccessToken

    from chat.selectors import contact_ids

    user = power_ids[0]
    token = AccessToken()
    token["user_id"] = str(user)
    client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {token}")
    reads = {
        "contacts (connect path)": lambda: contact_ids(user_id=user),
        "conversation list": lambda: client.get("/api/chat/conversations/"),
        "history first page": lambda: client.get(f"/api/chat/messages/?with={counterpart[user]}"),
        "notification badge": lambda: client.get("/api/notifications/?unread=true&page_size=1"),
    }
    result = {}
    for name, read in reads.items():
        read()  # warm
        with CaptureQueriesContext(connection) as captured:
            read()
        plans = []
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith(("SELECT", "WITH", "(")):
                continue
            if "auth_user" in sql and 'WHERE "auth_user"."id" =' in sql and "LIMIT 21" in sql:
                continue  # the JWT user lookup: the same on every request
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}")
                plans.append({"sql": sql, "plan": "\n".join(row[0] for row in cursor.fetchall())})
        result[name] = {"queries": len(captured.captured_queries), "plans": plans}
    return result


# --- the server and its clients -----------------------------------------------------
class Server:
    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        self.port = port
        self.log = log_path.open("wb")
        self.process = spawn_server(
            port, env=env, log=self.log, prefix=["taskset", "-c", "1"], new_session=True
        )
        wait_healthy(self.process, port, timeout=60, describe=lambda: f"see {log_path}")

    def cpu(self) -> float:
        return proc_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def tokens_for(user_ids: list[int]) -> dict[int, str]:
    import jwt

    now = int(time.time())
    return {
        uid: jwt.encode(
            {
                "token_type": "access",
                "exp": now + 36000,
                "iat": now,
                "jti": f"bench{uid}{now}",
                "user_id": str(uid),
            },
            SECRET,
            algorithm="HS256",
        )
        for uid in user_ids
    }


def db_backend_cpu(db_name: str) -> dict[int, float]:
    """CPU seconds of every PostgreSQL backend serving `db_name` (the server's pool)."""
    import psycopg

    with psycopg.connect(f"{PG}/{db_name}") as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [db_name],
            )
        ]
    cpu = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            cpu[pid] = proc_cpu_seconds(pid)
    return cpu


def db_cpu_since(db_name: str, before: dict[int, float]) -> float:
    after = db_backend_cpu(db_name)
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


async def measure_connects(targets: dict, tokens: dict[int, str], rounds: int) -> dict:
    """Each power user in turn: connect, wait for `authenticated`, then ping → pong.

    The consumer handles frames one at a time and its connect handler ends
    with the presence work (the contacts read), so the pong marks the moment
    the connect's whole cost has been paid. Each socket closes before the
    next opens: every connect is an online transition (and every close an
    offline one, with its own contacts read). The targets (empty, history)
    take turns connect by connect, so both see the same machine load.
    """
    import websockets

    to_auth = {label: [] for label in targets}
    to_ready = {label: [] for label in targets}
    cpu_before = {label: server.cpu() for label, (server, _) in targets.items()}
    db_before = {label: db_backend_cpu(db) for label, (_, db) in targets.items()}
    order = list(targets)
    for round_index in range(rounds):
        for token in tokens.values():
            for label in order if round_index % 2 == 0 else reversed(order):
                server = targets[label][0]
                started = time.perf_counter()
                async with websockets.connect(
                    f"ws://127.0.0.1:{server.port}/ws/?token={token}", max_size=2**22
                ) as ws:
                    while orjson.loads(await ws.recv())["type"] != "authenticated":
                        pass
                    to_auth[label].append(time.perf_counter() - started)
                    await ws.send('{"type":"ping"}')
                    while orjson.loads(await ws.recv())["type"] != "pong":
                        pass
                    to_ready[label].append(time.perf_counter() - started)
    await asyncio.sleep(1.0)  # the last close's presence work lands in the CPU figure
    result = {}
    for label, (server, db_name) in targets.items():
        count = len(to_auth[label])
        result[label] = {
            "connects": count,
            "p50_ms": percentile(to_auth[label], 50) * 1000,
            "p99_ms": percentile(to_auth[label], 99) * 1000,
            "ready_p50_ms": percentile(to_ready[label], 50) * 1000,
            "ready_p99_ms": percentile(to_ready[label], 99) * 1000,
            "cpu_ms_per_connect": (server.cpu() - cpu_before[label]) / count * 1000,
            "db_cpu_ms_per_connect": db_cpu_since(db_name, db_before[label]) / count * 1000,
        }
    return result


async def measure_chat(
    server: Server, tokens: dict[int, str], *, rate: int, seconds: int, db_name: str
) -> dict:
    import websockets

    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    sockets = {}
    for uid, token in tokens.items():
        ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/ws/?token={token}")
        while orjson.loads(await ws.recv())["type"] != "authenticated":
            pass
        sockets[uid] = ws

    async def reader(uid: int, ws) -> None:
        async for text in ws:
            frame = orjson.loads(text)
            # The receiver's copy (the sender's own devices get one too).
            if frame["type"] == "chat_message" and frame.get("receiver_id") == uid:
                latencies.append(time.perf_counter() - sent_at[frame["client_msg_id"]])

    readers = [asyncio.create_task(reader(uid, ws)) for uid, ws in sockets.items()]
    uids = list(sockets)
    rng = random.Random(2)
    cpu_before, db_before = server.cpu(), db_backend_cpu(db_name)
    started = time.perf_counter()
    total = rate * seconds
    for index in range(total):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sender = uids[index % len(uids)]
        receiver = rng.choice([u for u in uids if u != sender])
        key = f"h{os.getpid()}-{index}-{time.time_ns()}"
        sent_at[key] = time.perf_counter()
        await sockets[sender].send(
            orjson.dumps(
                {
                    "type": "chat_message",
                    "receiver_id": receiver,
                    "content": "hi",
                    "client_msg_id": key,
                }
            ).decode()
        )
    deadline = time.monotonic() + 15
    while len(latencies) < total and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    cpu = server.cpu() - cpu_before
    db_cpu = db_cpu_since(db_name, db_before)
    for task in readers:
        task.cancel()
    for ws in sockets.values():
        await ws.close()
    return {
        "sent": total,
        "delivered": len(latencies),
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 99) * 1000 if latencies else None,
        "cpu_us_per_message": cpu / total * 1e6,
        "db_cpu_us_per_message": db_cpu / total * 1e6,
        "latencies": latencies,
    }


def measure_rest(targets: dict, tokens: dict[int, str], counterpart, rounds: int) -> dict:
    """Conversation list and first history page, the targets taking turns request by request."""
    import http.client

    out: dict = {label: {} for label in targets}
    for name, path in (
        ("conversation_list", lambda uid: "/api/chat/conversations/"),
        ("history_page", lambda uid: f"/api/chat/messages/?with={counterpart[uid]}"),
    ):
        latencies = {label: [] for label in targets}
        conns = {
            label: http.client.HTTPConnection("127.0.0.1", server.port)
            for label, (server, _) in targets.items()
        }
        order = list(targets)
        for round_index in range(rounds):
            for uid, token in tokens.items():
                for label in order if round_index % 2 == 0 else reversed(order):
                    conn = conns[label]
                    started = time.perf_counter()
                    conn.request("GET", path(uid), headers={"Authorization": f"Bearer {token}"})
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200, response.status
                    latencies[label].append(time.perf_counter() - started)
        for label, conn in conns.items():
            conn.close()
            out[label][name] = {
                "requests": len(latencies[label]),
                "p50_ms": percentile(latencies[label], 50) * 1000,
                "p99_ms": percentile(latencies[label], 99) * 1000,
            }
    return out


def history_counts(db_name: str, power_ids: list[int]) -> dict:
    import psycopg

    with psycopg.connect(f"{PG}/{db_name}") as conn:
        per_user = [
            conn.execute(
                "SELECT count(*) FROM chat_chatmessage WHERE sender_id = %s OR receiver_id = %s",
                [uid, uid],
            ).fetchone()[0]
            for uid in power_ids
        ]
        total = conn.execute("SELECT count(*) FROM chat_chatmessage").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM quantumworks_event").fetchone()[0]
    return {"messages": total, "events": events, "power_user_messages_min": min(per_user)}


def top_counterparts(db_name: str, power_ids: list[int]) -> dict[int, int]:
    """Each power user's busiest counterpart (from the history database, once)."""
    import psycopg

    with psycopg.connect(f"{PG}/{db_name}") as conn:
        result = {}
        for uid in power_ids:
            row = conn.execute(
                "SELECT receiver_id FROM chat_chatmessage WHERE sender_id = %s "
                "AND receiver_id IS NOT NULL GROUP BY receiver_id ORDER BY count(*) DESC LIMIT 1",
                [uid],
            ).fetchone()
            result[uid] = row[0]
    return result


def inspect_reads(label: str, db_name: str, power_ids, counterpart) -> dict:
    inspected = subprocess.run(
        [
            str(PYTHON),
            __file__,
            "--inspect",
            db_name,
            "--power-list",
            ",".join(map(str, power_ids)),
            "--counterparts",
            json.dumps({str(k): v for k, v in counterpart.items()}),
        ],
        cwd=REPO,
        env=env_for(db_name, f"h8hist{label}"),
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(inspected.stdout.strip().splitlines()[-1])


def run_all(dbs: dict[str, str], args, power_ids, counterpart) -> dict:
    """Both servers up at once (both on core 1); every workload interleaves them."""
    results: dict = {}
    for label, db_name in dbs.items():
        results[label] = {
            "db": db_name,
            "history": history_counts(db_name, power_ids),
            "reads": inspect_reads(label, db_name, power_ids, counterpart),
        }
    log_dir = REPO / "bench" / "results"
    log_dir.mkdir(parents=True, exist_ok=True)
    targets = {}
    try:
        for offset, (label, db_name) in enumerate(dbs.items()):
            server = Server(
                env_for(db_name, f"h8hist{label}"),
                args.port + offset,
                log_dir / f"history-{label}.log",
            )
            targets[label] = (server, db_name)
        tokens = tokens_for(power_ids)
        for label, value in asyncio.run(
            measure_connects(targets, tokens, args.connect_rounds)
        ).items():
            results[label]["connect"] = value
        for label, value in measure_rest(targets, tokens, counterpart, args.rest_rounds).items():
            results[label]["rest"] = value

        # Chat runs one server at a time (two at once saturate the shared
        # core), in A B B A halves so both columns meet the same load.
        labels = list(targets)
        halves = {label: [] for label in labels}
        for label in [labels[0], labels[1], labels[1], labels[0]]:
            halves[label].append(
                asyncio.run(
                    measure_chat(
                        targets[label][0],
                        tokens,
                        rate=args.rate,
                        seconds=max(1, args.seconds // 2),
                        db_name=targets[label][1],
                    )
                )
            )
        for label, runs in halves.items():
            latencies = [value for run in runs for value in run.pop("latencies")]
            results[label]["chat"] = {
                "sent": sum(run["sent"] for run in runs),
                "delivered": len(latencies),
                "p50_ms": percentile(latencies, 50) * 1000,
                "p99_ms": percentile(latencies, 99) * 1000,
                "cpu_us_per_message": sum(run["cpu_us_per_message"] for run in runs) / len(runs),
                "db_cpu_us_per_message": sum(run["db_cpu_us_per_message"] for run in runs)
                / len(runs),
            }
    finally:
        for server, _ in targets.values():
            server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="qw_h8_bench")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--power", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--power-messages", type=int, default=120_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--port", type=int, default=8781)
    parser.add_argument("--connect-rounds", type=int, default=40)
    parser.add_argument("--rest-rounds", type=int, default=40)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "history-result.json"))
    parser.add_argument("--inspect", help=argparse.SUPPRESS)
    parser.add_argument("--power-list", help=argparse.SUPPRESS)
    parser.add_argument("--counterparts", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.inspect:
        power = [int(x) for x in args.power_list.split(",")]
        counterpart = {int(k): v for k, v in json.loads(args.counterparts).items()}
        print(json.dumps(inspect(args.inspect, power, counterpart)))
        return

    plan = Plan(users=args.users, power=args.power)
    dbs = {"empty": f"{args.db}_empty", "history": args.db}
    loads = {}
    for label, db_name in dbs.items():
        env = env_for(db_name, f"h8hist{label}")
        prepare(db_name, env)
        if not args.skip_load:
            print(f"loading {db_name} …", flush=True)
            loads[label] = load(db_name, plan, history=label == "history", args=args)
            loads[label]["rebuild_s"] = rebuild_state(env)
            print(f"  {loads[label]}", flush=True)

    counterpart = top_counterparts(dbs["history"], plan.power_ids)
    print("measuring empty and history, interleaved …", flush=True)
    results = run_all(dbs, args, plan.power_ids, counterpart)
    results["loads"] = loads
    results["machine"] = {
        "nproc": os.cpu_count(),
        "loadavg_end": Path("/proc/loadavg").read_text().split()[:3],
    }
    report(results, args)


def report(results: dict, args) -> None:
    empty, hist = results["empty"], results["history"]
    rows = []

    def add(name, key_path, unit="ms"):
        def get(r):
            value = r
            for key in key_path:
                value = value[key]
            return value

        a, b = get(empty), get(hist)
        ratio = (b / a) if a else float("nan")
        rows.append((name, f"{a:.2f} {unit}", f"{b:.2f} {unit}", f"{ratio:.2f}×"))

    add("connect → authenticated p50", ["connect", "p50_ms"])
    add("connect → authenticated p99", ["connect", "p99_ms"])
    add("connect → pong after presence p50", ["connect", "ready_p50_ms"])
    add("connect → pong after presence p99", ["connect", "ready_p99_ms"])
    add("server CPU per connect+close", ["connect", "cpu_ms_per_connect"])
    add("PostgreSQL CPU per connect+close", ["connect", "db_cpu_ms_per_connect"])
    add("chat send → deliver p50", ["chat", "p50_ms"])
    add("chat send → deliver p99", ["chat", "p99_ms"])
    add("server CPU per message", ["chat", "cpu_us_per_message"], "µs")
    add("PostgreSQL CPU per message", ["chat", "db_cpu_us_per_message"], "µs")
    add("conversation list p50", ["rest", "conversation_list", "p50_ms"])
    add("conversation list p99", ["rest", "conversation_list", "p99_ms"])
    add("history first page p50", ["rest", "history_page", "p50_ms"])
    add("history first page p99", ["rest", "history_page", "p99_ms"])
    for read in empty["reads"]:
        rows.append(
            (
                f"queries: {read}",
                str(empty["reads"][read]["queries"]),
                str(hist["reads"][read]["queries"]),
                "",
            )
        )
    buf = io.StringIO()
    header = ("", "empty", "history", "ratio")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)), file=buf)
    print(
        f"history: {hist['history']['messages']:,} messages, {hist['history']['events']:,} events, "
        f"every power user ≥ {hist['history']['power_user_messages_min']:,} messages; "
        f"empty: {empty['history']['messages']:,} messages",
        file=buf,
    )
    for label in ("empty", "history"):
        for read, data in results[label]["reads"].items():
            for plan in data["plans"]:
                print(
                    f"\n--- EXPLAIN ANALYZE [{label}] {read}\n{plan['sql']}\n{plan['plan']}",
                    file=buf,
                )
    text = buf.getvalue()
    print(text)
    summary = {
        label: {
            "connect": results[label]["connect"],
            "chat": results[label]["chat"],
            "rest": results[label]["rest"],
            "queries": {k: v["queries"] for k, v in results[label]["reads"].items()},
            "history": results[label]["history"],
        }
        for label in ("empty", "history")
    }
    summary["loads"] = results["loads"]
    print(json.dumps(summary))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    Path(args.out).with_suffix(".txt").write_text(text + "\n" + json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
