"""Chaos run: two server processes, dropped sockets, SIGKILLed servers; then count.

    .venv/bin/python bench/chaos.py --messages 20000 --rate 200 --users 50 --kills 1

Users in pairs send each other 1:1 chat messages at a steady total rate, each
with a unique `client_msg_id`; clients connect round-robin to two servers,
their sockets are cut at random, and a server is SIGKILLed and restarted.
Clients reconnect with `last_seq`, dedupe by seq and resend unacked messages
with the same id. At the end every client's view is compared with the
database: each ChatMessage it sent or received must have reached it exactly
once (after dedupe by seq), in seq order. Exit status 1 if anything was lost,
duplicated or reordered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

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
    parser.add_argument("--messages", type=int, default=20_000, help="messages to send in all")
    parser.add_argument("--rate", type=float, default=200, help="total messages per second")
    parser.add_argument("--kills", type=int, default=1, help="SIGKILLs of a server (alternating)")
    parser.add_argument(
        "--kill-interval",
        type=float,
        default=None,
        help="seconds between kills (default: spread evenly over the sending time)",
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
    return args


@dataclass
class ChaosRun:
    clients: list[BenchClient]
    issued: dict[str, int]  # client_msg_id -> sender id
    kills: list[str]
    phases: dict[str, float]  # seconds after the first message, by phase end
    total_seconds: float
    drain_complete: bool
    client_cpu: float


def log(text: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def run_chaos(
    args: argparse.Namespace, users: list[BenchUser], slots: list[ServerSlot]
) -> ChaosRun:
    pick = round_robin(slots)
    clients = [
        BenchClient(user=user, partner_id=users[index ^ 1].id, pick_slot=pick)
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
    if args.kill_interval:
        kill_times = [args.kill_interval * (k + 1) for k in range(args.kills)]
    else:
        kill_times = [send_seconds * (k + 1) / (args.kills + 1) for k in range(args.kills)]
    kills: list[str] = []
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

    async def kill_servers() -> None:
        for number, at in enumerate(kill_times):
            await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
            slot = slots[number % len(slots)]
            life = slot.kill()
            kills.append(f"{life.name} pid {life.pid} at t={time.monotonic() - t0:.1f}s")
            log(f"SIGKILL {life.name} (pid {life.pid}); restarting in {args.restart_delay}s")
            await asyncio.sleep(args.restart_delay)
            slot.start()
            new = await asyncio.to_thread(slot.wait_ready)
            log(f"{new.name} (pid {new.pid}) ready")

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
    await asyncio.gather(issue(), cut_sockets(), kill_servers())
    phases["kills done"] = time.monotonic() - t0

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
        phases=phases,
        total_seconds=time.monotonic() - started,
        drain_complete=drain_complete,
        client_cpu=self_cpu_seconds() - cpu_start,
    )


def inbox_last_seqs(user_ids: list[int]) -> dict[int, int]:
    from django.db import connection

    from quantumworks.models import UserInbox

    try:
        return dict(
            UserInbox.objects.filter(user_id__in=user_ids).values_list("user_id", "last_seq")
        )
    finally:
        connection.close()


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
    from quantumworks.models import Event

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
        f"server_kills={len(run.kills)}, reconnects={reconnects} "
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
    end = time.monotonic()
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


def main() -> int:
    args = parse_args()
    if args.seed is not None:
        random.seed(args.seed)
    load_at_start = loadavg()
    setup = prepare_run(args, kind="chaos", labels=["A", "B"])
    log(f"logs in {setup.log_dir}; load average {load_at_start}")
    slots = setup.slots
    try:
        start_servers(slots)
        log(f"servers ready: {', '.join(f'{s.current.name}:{s.port}' for s in slots)}")
        run = asyncio.run(run_chaos(args, setup.users, slots))
    finally:
        stop_servers(slots)
    print(f"load average at start: {load_at_start}")
    verdict = verify(run)
    return report(args, run, verdict, slots)


if __name__ == "__main__":
    sys.exit(main())
