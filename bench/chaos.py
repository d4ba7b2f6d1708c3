"""Chaos run: two server processes behind nginx, dropped sockets, and faults; then count.

    .venv/bin/python bench/chaos.py --messages 100000 --rate 300 --users 50

Users in pairs send each other 1:1 chat messages at a steady total rate, each
with a unique `client_msg_id`; clients connect through our own nginx
(deploy/nginx.conf.template) to two servers, their sockets are cut at random,
and the faults of `--faults` are spread over the sending time: a SIGKILL of a
process (restarted after `--restart-delay`), a restart of Redis, a restart of
PostgreSQL, and a rolling restart (SIGTERM, 4012, each process in turn).
Redis and PostgreSQL are private instances this script starts on spare ports
(never the machine's shared ones); `--shared-services` uses those instead and
then leaves out the Redis and PostgreSQL restarts.
Clients reconnect with `last_seq`, dedupe by seq and resend unacked messages
with the same id. At the end every client's view is compared with the
database: each ChatMessage it sent or received must have reached it exactly
once (after dedupe by seq), in seq order. Exit status 1 if anything was lost,
duplicated or reordered.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BenchClient,
    BenchUser,
    Outgoing,
    ServerSlot,
    add_setup_arguments,
    check_setup_arguments,
    command_line,
    layer_backlog,
    loadavg,
    prepare_run,
    round_robin,
    self_cpu_seconds,
    start_servers,
    stop_servers,
    sum_stats,
    wait_until,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages to send in all")
    parser.add_argument("--rate", type=float, default=300, help="total messages per second")
    parser.add_argument(
        "--faults",
        default="kill,redis,postgres,rolling",
        help="comma list, spread evenly over the sending time: kill (SIGKILL a process), "
        "redis, postgres (restart the private instance), rolling (SIGTERM each process in turn)",
    )
    parser.add_argument("--redis-down", type=float, default=2.0, help="seconds Redis stays down")
    parser.add_argument(
        "--postgres-down", type=float, default=3.0, help="seconds PostgreSQL is down"
    )
    parser.add_argument("--no-nginx", action="store_true", help="clients pick a server themselves")
    parser.add_argument(
        "--shared-services",
        action="store_true",
        help="use the machine's PostgreSQL (5432) and Redis (6379); no restarts of them",
    )
    parser.add_argument("--restart-delay", type=float, default=1.0, help="seconds down per kill")
    parser.add_argument("--drops-per-sec", type=float, default=2.0, help="random socket cuts/s")
    parser.add_argument("--ack-timeout", type=float, default=90, help="max wait for the last acks")
    parser.add_argument("--drain", type=float, default=3, help="min seconds of quiet at the end")
    parser.add_argument("--drain-timeout", type=float, default=120, help="max seconds of drain")
    add_setup_arguments(parser, users=50, port_base=8101)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    check_setup_arguments(parser, args, servers=2)
    args.faults = [fault for fault in args.faults.split(",") if fault]
    unknown = set(args.faults) - {"kill", "redis", "postgres", "rolling"}
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    if args.shared_services and {"redis", "postgres"} & set(args.faults):
        parser.error("--shared-services never restarts the shared Redis/PostgreSQL: drop them")
    return args


@dataclass
class ChaosRun:
    clients: list[BenchClient]
    issued: dict[str, int]  # client_msg_id -> sender id
    kills: list[str]
    faults: list[Fault]
    phases: dict[str, float]  # seconds after the first message, by phase end
    total_seconds: float
    drain_complete: bool
    client_cpu: float


@dataclass
class Fault:
    name: str
    started: float  # seconds after the first message
    ended: float | None = None
    detail: str = ""


class ProxySlot:
    """nginx's port, as the clients see it: always up; which process serves is nginx's choice."""

    current = None
    up = True

    def __init__(self, port: int) -> None:
        self.port = port


@dataclass
class PrivateServices:
    redis: Any = None
    postgres: Any = None
    nginx: Any = None

    def stop(self) -> None:
        for part in (self.nginx, self.redis, self.postgres):
            if part is not None:
                part.cleanup()


def log(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def run_chaos(
    args: argparse.Namespace,
    users: list[BenchUser],
    slots: list[ServerSlot],
    services: PrivateServices,
) -> ChaosRun:
    if services.nginx is not None:
        proxy = ProxySlot(services.nginx.port)
        pick = lambda: proxy  # noqa: E731
    else:
        pick = round_robin(slots)
    arrivals: list[float] = []
    arrivals_of: defaultdict[int, list[float]] = defaultdict(list)

    def record_arrival(client: BenchClient, _frame: dict, now: float) -> None:
        arrivals.append(now)
        arrivals_of[client.user.id].append(now)

    clients = [
        BenchClient(
            user=user,
            partner_id=users[index ^ 1].id,
            pick_slot=pick,
            on_event=record_arrival,
        )
        for index, user in enumerate(users)
    ]
    stop = asyncio.Event()
    cpu_start = self_cpu_seconds()
    started = time.monotonic()
    tasks = [asyncio.create_task(client.run(stop)) for client in clients]
    await asyncio.wait_for(
        asyncio.gather(*(client.authenticated.wait() for client in clients)), timeout=60
    )
    log(f"{len(clients)} clients connected; sending {args.messages} at {args.rate}/s")

    issued: dict[str, int] = {}
    sending = asyncio.Event()
    sending.set()
    send_seconds = args.messages / args.rate
    fault_times = [send_seconds * (k + 1) / (len(args.faults) + 1) for k in range(len(args.faults))]
    kills: list[str] = []
    faults: list[Fault] = []
    phases: dict[str, float] = {}
    t0 = time.monotonic()

    async def issue() -> None:
        count = 0
        while count < args.messages:
            due = min(args.messages, int((time.monotonic() - t0) * args.rate) + 1)
            while count < due:
                client = clients[count % len(clients)]
                cmid = f"c{os.getpid()}-{count}"
                client.submit(
                    Outgoing(
                        client_msg_id=cmid,
                        receiver_id=client.partner_id,
                        content=f"chaos {count} from {client.user.id}",
                    )
                )
                issued[cmid] = client.user.id
                count += 1
            await asyncio.sleep(0.005)
        phases["sent"] = time.monotonic() - t0
        sending.clear()

    async def cut_sockets() -> None:
        if args.drops_per_sec <= 0:
            return
        while sending.is_set():
            await asyncio.sleep(random.expovariate(args.drops_per_sec))
            random.choice(clients).drop()

    async def restart(slot: ServerSlot) -> None:
        slot.start()
        new = await asyncio.to_thread(slot.wait_ready)
        log(f"{new.name} (pid {new.pid}) ready")

    async def inject(name: str, number: int) -> Fault:
        fault = Fault(name=name, started=time.monotonic() - t0)
        if name == "kill":
            slot = slots[number % len(slots)]
            life = slot.kill()
            kills.append(f"{life.name} pid {life.pid} at t={fault.started:.1f}s")
            fault.detail = f"SIGKILL {life.name}, restarted after {args.restart_delay}s"
            log(f"SIGKILL {life.name} (pid {life.pid}); restarting in {args.restart_delay}s")
            await asyncio.sleep(args.restart_delay)
            await restart(slot)
        elif name == "rolling":
            for slot in slots:
                life = slot.current
                log(f"rolling restart: SIGTERM {life.name} (4012)")
                await asyncio.to_thread(slot.stop)
                await restart(slot)
            fault.detail = "SIGTERM + restart of " + ", then ".join(slot.label for slot in slots)
        elif name == "redis":
            log(f"Redis: SIGKILL, down {args.redis_down}s")
            services.redis.kill()
            await asyncio.sleep(args.redis_down)
            await asyncio.to_thread(services.redis.start)
            fault.detail = f"Redis killed, started after {args.redis_down}s"
            log("Redis back")
        elif name == "postgres":
            log(f"PostgreSQL: fast shutdown, down {args.postgres_down}s")
            await asyncio.to_thread(services.postgres.stop)
            await asyncio.sleep(args.postgres_down)
            await asyncio.to_thread(services.postgres.start)
            fault.detail = f"PostgreSQL stopped (fast), started after {args.postgres_down}s"
            log("PostgreSQL back")
        fault.ended = time.monotonic() - t0
        return fault

    async def inject_faults() -> None:
        kill_number = 0
        for name, at in zip(args.faults, fault_times, strict=True):
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            faults.append(await inject(name, kill_number))
            kill_number += name == "kill"

    async def progress() -> None:
        while True:
            await asyncio.sleep(5)
            acked = sum(len(client.acks) for client in clients)
            pending = sum(len(client.pending) for client in clients)
            online = sum(client.connected for client in clients)
            received = sum(len(client.received) for client in clients)
            queue = await asyncio.to_thread(layer_backlog, args.redis_url, args.prefix)
            log(
                f"t={time.monotonic() - t0:.0f}s issued={len(issued)} acked={acked} "
                f"unacked={pending} events_received={received} online={online}/{len(clients)} "
                f"layer_queue={queue} "
                f"servers_up={sum(slot.up for slot in slots)} load={loadavg()}"
            )

    reporter = asyncio.create_task(progress())
    await asyncio.gather(issue(), cut_sockets(), inject_faults())
    phases["faults done"] = time.monotonic() - t0

    await wait_until(
        lambda: not any(client.pending for client in clients), seconds=args.ack_timeout
    )

    phases["all acked"] = time.monotonic() - t0
    # Every acked message is committed: the inboxes' last_seq are now final.
    expected = await asyncio.to_thread(inbox_last_seqs, [user.id for user in users])
    drain_start = time.monotonic()
    drain_complete = await wait_until(
        lambda: (
            time.monotonic() >= drain_start + args.drain
            and all(
                client.connected and client.watermark >= expected.get(client.user.id, 0)
                for client in clients
            )
        ),
        seconds=args.drain_timeout,
    )
    phases["drained"] = time.monotonic() - t0
    reporter.cancel()
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
    phases["clients closed"] = time.monotonic() - t0
    return ChaosRun(
        clients=clients,
        issued=issued,
        kills=kills,
        faults=[
            measure_silence(
                fault, arrivals, arrivals_of, t0, until=following.started if following else None
            )
            for fault, following in zip(faults, [*faults[1:], None], strict=True)
        ],
        phases=phases,
        total_seconds=time.monotonic() - started,
        drain_complete=drain_complete,
        client_cpu=self_cpu_seconds() - cpu_start,
    )


def measure_silence(
    fault: Fault,
    arrivals: list[float],
    arrivals_of: dict[int, list[float]],
    t0: float,
    *,
    until: float | None,
) -> Fault:
    """How long live delivery stopped around a fault.

    `silence`: the longest stretch in which no client received any durable
    event, in the window from 1 s before the fault to 15 s after its end (or
    to the next fault's start, if sooner).
    `client max gap`: per client, the longest wait between two of its events
    in that window (its normal spacing is users/(2*rate) s); p50 and max.
    """
    start = t0 + fault.started - 1
    end = t0 + min((fault.ended or fault.started) + 15, until if until is not None else 1e12)
    window = sorted(at for at in arrivals if start <= at <= end)
    silence = max((b - a for a, b in itertools.pairwise(window)), default=0.0)
    gaps = []
    for times in arrivals_of.values():
        mine = [at for at in times if start <= at <= end]
        gaps.append(max((b - a for a, b in itertools.pairwise(mine)), default=0.0))
    gaps.sort()
    p50 = gaps[len(gaps) // 2] if gaps else 0.0
    fault.detail += (
        f"; no live delivery to anyone for {silence:.2f}s at most; per-client longest gap "
        f"p50 {p50:.2f}s, max {gaps[-1] if gaps else 0.0:.2f}s"
    )
    return fault


def after_restarts(query: Callable[[], Any]) -> Any:
    """Run a read of our own; pooled connections a PostgreSQL restart broke are dropped."""
    from django.db import OperationalError, connection

    for attempt in range(5):
        try:
            return query()
        except OperationalError:
            if attempt == 4:
                raise
        finally:
            connection.close()
    return None


def inbox_last_seqs(user_ids: list[int]) -> dict[int, int]:
    from realtime.models import UserInbox

    return after_restarts(
        lambda: dict(
            UserInbox.objects.filter(user_id__in=user_ids).values_list("user_id", "last_seq")
        )
    )


@dataclass
class Verdict:
    db_rows: int = 0
    not_persisted: int = 0  # issued, never stored
    unexpected_rows: int = 0  # stored, never issued
    unacked: int = 0
    ack_mismatch: int = 0  # ack's message_id differs from the stored row
    expected_events: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    foreign: int = 0  # a chat_message that is not the client's
    seq_mismatch: int = 0  # the client's seq → message differs from the Event table
    db_missing_events: int = 0
    db_duplicate_events: int = 0
    db_seq_gaps: int = 0
    messages_fully_delivered: int = 0
    lost_examples: list[str] | None = None


def verify(run: ChaosRun) -> Verdict:
    from chat.models import ChatMessage
    from realtime.models import Event

    verdict = Verdict(lost_examples=[])
    user_ids = [client.user.id for client in run.clients]
    rows = list(
        ChatMessage.objects.filter(sender_id__in=user_ids).values_list(
            "id", "sender_id", "receiver_id", "client_msg_id"
        )
    )
    verdict.db_rows = len(rows)
    by_cmid = {(sender, cmid): mid for mid, sender, _receiver, cmid in rows}
    verdict.not_persisted = sum(
        (sender, cmid) not in by_cmid for cmid, sender in run.issued.items()
    )
    verdict.unexpected_rows = sum(cmid not in run.issued for _m, _s, _r, cmid in rows)
    for client in run.clients:
        verdict.unacked += len(client.pending)
        for cmid, (message_id, _dup, _server) in client.acks.items():
            if by_cmid.get((client.user.id, cmid)) != message_id:
                verdict.ack_mismatch += 1

    # The Event table: one chat_message event per (party, message), gap-free seqs.
    event_at: dict[tuple[int, int], int | None] = {}
    events_of: Counter[tuple[int, int]] = Counter()
    seqs_of: defaultdict[int, list[int]] = defaultdict(list)
    for user_id, seq, kind, message_id in Event.objects.filter(user_id__in=user_ids).values_list(
        "user_id", "seq", "type", "payload__message_id"
    ):
        event_at[(user_id, seq)] = message_id
        seqs_of[user_id].append(seq)
        if kind == "chat_message":
            events_of[(user_id, message_id)] += 1
    for seqs in seqs_of.values():
        seqs.sort()
        verdict.db_seq_gaps += sum(1 for i, seq in enumerate(seqs) if seq != i + 1)

    expected_of: defaultdict[int, set[int]] = defaultdict(set)
    for message_id, sender, receiver, _cmid in rows:
        expected_of[sender].add(message_id)
        expected_of[receiver].add(message_id)
        for party in (sender, receiver):
            count = events_of.get((party, message_id), 0)
            if count == 0:
                verdict.db_missing_events += 1
            verdict.db_duplicate_events += max(0, count - 1)

    seen_by_message: Counter[int] = Counter()
    for client in run.clients:
        user_id = client.user.id
        seen = Counter(r.message_id for r in client.received if r.type == "chat_message")
        for item in client.received:
            if event_at.get((user_id, item.seq)) != item.message_id:
                verdict.seq_mismatch += 1
        expected = expected_of[user_id]
        verdict.expected_events += len(expected)
        for message_id in expected:
            count = seen.get(message_id, 0)
            if count == 0:
                verdict.lost += 1
                if len(verdict.lost_examples) < 10:
                    seqs = [s for (u, s), m in event_at.items() if u == user_id and m == message_id]
                    verdict.lost_examples.append(
                        f"user {user_id} message {message_id} seq {seqs} "
                        f"(client watermark {client.watermark}, max seen {client.max_seq})"
                    )
            else:
                verdict.delivered += 1
                seen_by_message[message_id] += 1
            verdict.duplicated += max(0, count - 1)
        verdict.foreign += sum(count for mid, count in seen.items() if mid not in expected)
    verdict.messages_fully_delivered = sum(1 for count in seen_by_message.values() if count >= 2)
    return verdict


def report(
    args: argparse.Namespace, run: ChaosRun, verdict: Verdict, slots: list[ServerSlot]
) -> int:
    stats = sum_stats(run.clients)
    reconnects = stats.connects - len(run.clients)
    sent = len(run.issued)
    duplicate_acks = sum(life.duplicate_acks for slot in slots for life in slot.lives)
    print(
        f"sent={sent}, delivered={verdict.delivered}/{verdict.expected_events} events "
        f"({verdict.messages_fully_delivered}/{verdict.db_rows} messages reached sender and "
        f"receiver), lost={verdict.lost}, duplicated_after_dedupe={verdict.duplicated}, "
        f"reordered={stats.reordered}, raw_duplicates_before_dedupe={stats.raw_duplicates}, "
        f"server_kills={len(run.kills)}, faults={','.join(f.name for f in run.faults)}, "
        f"reconnects={reconnects} "
        f"(socket cuts {stats.dropped_by_us}, failed connect attempts {stats.failed_connects}), "
        f"resends={stats.resends} (duplicate acks {duplicate_acks})"
    )
    print(f"command: {command_line()}")
    print(
        f"database: rows={verdict.db_rows} not_persisted={verdict.not_persisted} "
        f"unexpected_rows={verdict.unexpected_rows} unacked={verdict.unacked} "
        f"ack_mismatch={verdict.ack_mismatch} missing_events={verdict.db_missing_events} "
        f"duplicate_events={verdict.db_duplicate_events} seq_gaps={verdict.db_seq_gaps}"
    )
    print(
        f"wire: gaps_on_wire={stats.gaps_on_wire} seq_mismatch={verdict.seq_mismatch} "
        f"foreign_messages={verdict.foreign} resumed_frames={stats.resumed_frames} "
        f"replayed_events={stats.replayed_events} resync_required={stats.resync_required} "
        f"errors={dict(stats.errors)} drain_complete={run.drain_complete}"
    )
    print(
        f"timing: sent {sent} in {run.phases['sent']:.1f}s ({sent / run.phases['sent']:.0f}/s "
        f"offered, {args.rate:g}/s asked); "
        + ", ".join(f"{name} at {at:.1f}s" for name, at in run.phases.items())
        + f"; whole run {run.total_seconds:.1f}s; "
        f"client CPU {run.client_cpu:.1f}s ({run.client_cpu / run.total_seconds:.0%} of a core); "
        f"kills: {'; '.join(run.kills) or 'none'}"
    )
    for fault in run.faults:
        print(f"fault {fault.name} at t={fault.started:.1f}s..{fault.ended:.1f}s: {fault.detail}")
    end = time.monotonic()
    if not args.no_nginx:
        print(
            "(through nginx a client does not know which process acked it: the per-process "
            "persisted counts below are 0; the CPU figures and the total stand)"
        )
    total_cpu = 0.0
    for slot in slots:
        for life in slot.lives:
            cpu = life.cpu_used() or 0.0
            total_cpu += cpu
            alive = life.seconds_alive(end)
            per_message = f"{cpu / life.persisted * 1e6:.0f}µs" if life.persisted else "n/a"
            print(
                f"server {life.name} pid={life.pid} port={life.port} "
                f"{'SIGKILLed' if life.killed else 'stopped'} after {alive:.1f}s: "
                f"persisted={life.persisted} ({life.persisted / alive:.0f} msgs/s sustained), "
                f"duplicate_acks={life.duplicate_acks}, cpu={cpu:.1f}s "
                f"({cpu / alive:.0%} of a core), cpu/msg≈{per_message}, "
                f"log problems={len(life.log_problems())} ({life.log_path})"
            )
            life.print_problems()
    if verdict.db_rows:
        print(
            f"server CPU total {total_cpu:.1f}s for {verdict.db_rows} messages = "
            f"{total_cpu / verdict.db_rows * 1e6:.0f}µs per message (all processes, from ready to "
            "kill/stop; a process's share counts the messages it acked as new, while the "
            "delivery fan-out of each message runs on whichever process holds the receiver's "
            "socket, so the per-process figures are approximate)"
        )
    for example in verdict.lost_examples or []:
        print(f"lost: {example}")
    print(f"load average at end: {loadavg()}")
    failures = (
        verdict.lost
        + verdict.duplicated
        + stats.reordered
        + verdict.not_persisted
        + verdict.unexpected_rows
        + verdict.unacked
        + verdict.ack_mismatch
        + verdict.seq_mismatch
        + verdict.foreign
        + verdict.db_missing_events
        + verdict.db_duplicate_events
        + verdict.db_seq_gaps
    )
    return 1 if failures else 0


def start_private_services(args: argparse.Namespace) -> PrivateServices:
    """Our own Redis and PostgreSQL on spare ports: the restarts hit only these."""
    from testkit.infra import PostgresCluster, RedisServer

    services = PrivateServices()
    if not args.shared_services:
        services.redis = RedisServer().start()
        services.postgres = PostgresCluster().init().start()
        args.redis_url = services.redis.url
        args.pg_port = services.postgres.port
        log(f"private Redis :{services.redis.port}, PostgreSQL :{services.postgres.port}")
    return services


def main() -> int:
    args = parse_args()
    if args.seed is not None:
        random.seed(args.seed)
    load_at_start = loadavg()
    services = start_private_services(args)
    slots: list[ServerSlot] = []
    try:
        setup = prepare_run(args, kind="chaos", labels=["A", "B"])
        log(f"logs in {setup.log_dir}; load average {load_at_start}")
        slots = setup.slots
        start_servers(slots)
        log(f"servers ready: {', '.join(f'{s.current.name}:{s.port}' for s in slots)}")
        if not args.no_nginx:
            from testkit.infra import Nginx

            services.nginx = Nginx([slot.port for slot in slots]).start()
            log(f"nginx :{services.nginx.port} in front (logs in {services.nginx.dir})")
        run = asyncio.run(run_chaos(args, setup.users, slots, services))
    finally:
        stop_servers(slots)
        if services.nginx is not None:
            services.nginx.cleanup()
            services.nginx = None
    try:
        print(f"load average at start: {load_at_start}")
        verdict = after_restarts(lambda: verify(run))
        return report(args, run, verdict, slots)
    finally:
        services.stop()


if __name__ == "__main__":
    sys.exit(main())
