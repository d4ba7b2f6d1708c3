"""Throughput of one server process (or N): offered chat rate in steps, measured.

    .venv/bin/python bench/load.py --servers 1 --users 200 --rates 100,250,500,1000,1500

Users in pairs send each other 1:1 chat messages over one socket each; the
offered rate is held for `--step-seconds` per step. Per step it prints the
offered and persisted rate, ack latency (sent → `message_sent`), delivery
latency (sent → the receiver's `chat_message` frame), the server processes'
CPU per message (from /proc) and this client's own CPU, so a client
bottleneck shows. Nothing is cut or killed here (see chaos.py for that).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    create_users,
    flush_redis_prefix,
    layer_backlog,
    loadavg,
    ms,
    percentile,
    prepare_run,
    round_robin,
    scrape_counters,
    self_cpu_seconds,
    start_servers,
    stop_servers,
    sum_stats,
    wait_until,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--rates",
        default="0,100,250,500,1000,1500",
        help="offered msgs/s per step (0: idle sockets only, for the baseline CPU)",
    )
    parser.add_argument("--step-seconds", type=float, default=15)
    parser.add_argument("--warmup-seconds", type=float, default=3, help="at the first rate")
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=30,
        help="max seconds to wait after a step for its backlog",
    )
    parser.add_argument("--pause", type=float, default=2, help="seconds between steps")
    parser.add_argument(
        "--stop-when-saturated",
        action="store_true",
        help="stop after a step whose backlog did not drain (default: restart and go on)",
    )
    add_setup_arguments(parser, users=200, port_base=8150)
    args = parser.parse_args()
    check_setup_arguments(parser, args, servers=args.servers)
    args.rate_list = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    return args


def log(text: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@dataclass
class Step:
    name: str
    rate: float
    sent_at: dict[str, float] = field(default_factory=dict)
    acked: set[str] = field(default_factory=set)
    delivered: set[str] = field(default_factory=set)
    ack_latency: list[float] = field(default_factory=list)
    delivery_latency: list[float] = field(default_factory=list)
    window_end: float = float("inf")
    acks_in_window: int = 0


class Meter:
    """Client hooks: match acks and receivers' frames to the step's send times."""

    def __init__(self) -> None:
        self.step: Step | None = None

    def on_ack(self, client: BenchClient, frame: dict, now: float) -> None:
        step = self.step
        cmid = frame.get("client_msg_id")
        if step is None or cmid not in step.sent_at or cmid in step.acked:
            return
        step.acked.add(cmid)
        step.ack_latency.append(now - step.sent_at[cmid])
        if now <= step.window_end:
            step.acks_in_window += 1

    def on_event(self, client: BenchClient, frame: dict, now: float) -> None:
        step = self.step
        if step is None or frame.get("receiver_id") != client.user.id:
            return
        cmid = frame.get("client_msg_id")
        if cmid in step.sent_at and cmid not in step.delivered:
            step.delivered.add(cmid)
            step.delivery_latency.append(now - step.sent_at[cmid])


def persisted_between(user_ids: list[int], start: datetime, end: datetime) -> int:
    from django.db import connection

    from chat.models import ChatMessage

    try:
        return ChatMessage.objects.filter(
            sender_id__in=user_ids, created_at__gte=start, created_at__lt=end
        ).count()
    finally:
        connection.close()


PIPELINE_COUNTERS = ("qw_events_published_total", 'qw_frames_out_total{type="event"}')


def pipeline_counters(slots: list[ServerSlot]) -> list[float] | None:
    """Layer messages published after commit, and event frames sent, summed over servers."""
    totals = [0.0, 0.0]
    for slot in slots:
        values = scrape_counters(slot.port, PIPELINE_COUNTERS)
        if values is None:
            return None
        for index, name in enumerate(PIPELINE_COUNTERS):
            totals[index] += values.get(name, 0.0)
    return totals


def servers_cpu(slots: list[ServerSlot]) -> float:
    return sum(slot.current.cpu_now() or 0.0 for slot in slots if slot.current)


async def run_step(
    step: Step,
    *,
    seconds: float,
    clients: list[BenchClient],
    slots: list[ServerSlot],
    meter: Meter,
    settle_timeout: float,
    report: bool,
    redis_url: str,
    prefix: str,
) -> bool:
    meter.step = step
    stats_before = sum_stats(clients)
    load_before = loadavg()
    pipeline_0 = await asyncio.to_thread(pipeline_counters, slots)
    cpu_server_0, cpu_client_0 = servers_cpu(slots), self_cpu_seconds()
    wall_0, t0 = datetime.now(UTC), time.monotonic()
    step.window_end = t0 + seconds
    count = 0
    total = int(step.rate * seconds)
    while count < total:
        due = min(total, int((time.monotonic() - t0) * step.rate) + 1)
        while count < due:
            client = clients[count % len(clients)]
            cmid = f"{step.name}-{count}"
            step.sent_at[cmid] = time.monotonic()
            client.submit(
                Outgoing(
                    client_msg_id=cmid,
                    receiver_id=client.partner_id,
                    content=f"load {cmid} from {client.user.id}",
                )
            )
            count += 1
        await asyncio.sleep(0.002)
    await asyncio.sleep(max(0.0, step.window_end - time.monotonic()))
    window = time.monotonic() - t0
    wall_1 = datetime.now(UTC)
    cpu_server_1, cpu_client_1 = servers_cpu(slots), self_cpu_seconds()
    backlog = total - step.acks_in_window
    undelivered = total - len(step.delivered)
    layer_queue = await asyncio.to_thread(layer_backlog, redis_url, prefix)
    pipeline_1 = await asyncio.to_thread(pipeline_counters, slots)
    if pipeline_0 and pipeline_1:
        published, event_frames = (int(b - a) for a, b in zip(pipeline_0, pipeline_1, strict=True))
        pipeline = f"published={published} event_frames_out={event_frames}"
    else:
        pipeline = "published=n/a event_frames_out=n/a"
    drained = await wait_until(
        lambda: len(step.acked) == total and len(step.delivered) == total,
        seconds=settle_timeout,
    )
    drain_seconds = time.monotonic() - t0 - window
    cpu_server_2 = servers_cpu(slots)
    if not report:
        return drained
    user_ids = [client.user.id for client in clients]
    rows = await asyncio.to_thread(persisted_between, user_ids, wall_0, wall_1)
    stats_after = sum_stats(clients)
    errors = {
        code: count - stats_before.errors.get(code, 0)
        for code, count in stats_after.errors.items()
        if count - stats_before.errors.get(code, 0)
    }
    disconnects = stats_after.disconnects - stats_before.disconnects
    persisted_total = len(step.acked)
    cpu_per_msg = (
        f"{(cpu_server_2 - cpu_server_0) / persisted_total * 1e6:.0f}µs/msg"
        if persisted_total
        else "n/a µs/msg (idle step)"
    )
    print(
        f"offered={total / window:.0f}/s ({total} msgs in {window:.1f}s) "
        f"persisted={rows / window:.0f}/s (db rows created in window {rows}, "
        f"acks in window {step.acks_in_window} = {step.acks_in_window / window:.0f}/s) | "
        f"ack p50={ms(percentile(step.ack_latency, 50))} "
        f"p95={ms(percentile(step.ack_latency, 95))} "
        f"p99={ms(percentile(step.ack_latency, 99))} | "
        f"delivery p50={ms(percentile(step.delivery_latency, 50))} "
        f"p99={ms(percentile(step.delivery_latency, 99))} | "
        f"server cpu {(cpu_server_1 - cpu_server_0) / window:.0%} of a core, "
        f"{cpu_per_msg} | client cpu {(cpu_client_1 - cpu_client_0) / window:.0%} "
        f"| errors={errors or 0} disconnects={disconnects} | at window end: unacked={backlog} "
        f"undelivered={undelivered} layer_queue={layer_queue} {pipeline}, "
        f"{'drained' if drained else 'NOT drained'} {drain_seconds:.1f}s later "
        f"(acked {persisted_total}/{total}, delivered {len(step.delivered)}/{total}) | "
        f"load {load_before} → {loadavg()}",
        flush=True,
    )
    return drained


class Session:
    """One socket per user, all connected, until `close`."""

    def __init__(self, users: list[BenchUser], slots: list[ServerSlot], meter: Meter) -> None:
        pick = round_robin(slots)
        self.clients = [
            BenchClient(
                user=user,
                partner_id=users[index ^ 1].id,
                pick_slot=pick,
                on_ack=meter.on_ack,
                on_event=meter.on_event,
            )
            for index, user in enumerate(users)
        ]
        self.stop = asyncio.Event()
        self.tasks = [asyncio.create_task(client.run(self.stop)) for client in self.clients]

    async def opened(self) -> None:
        await asyncio.wait_for(
            asyncio.gather(*(client.authenticated.wait() for client in self.clients)),
            timeout=120,
        )

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), timeout=30)


async def fresh_start(
    args: argparse.Namespace, slots: list[ServerSlot], *, tag: str
) -> list[BenchUser]:
    """Restart the servers on an empty layer with new users: no backlog carries over."""
    await asyncio.to_thread(stop_servers, slots)
    await asyncio.to_thread(flush_redis_prefix, args.redis_url, args.prefix)
    users = await asyncio.to_thread(create_users, args.users, tag=tag)
    await asyncio.to_thread(start_servers, slots)
    return users


async def run_load(
    args: argparse.Namespace, users: list[BenchUser], slots: list[ServerSlot]
) -> None:
    meter = Meter()
    session = Session(users, slots, meter)
    try:
        await session.opened()
        log(f"{len(users)} sockets open on {len(slots)} server(s)")
        step_runner = functools.partial(
            run_step,
            slots=slots,
            meter=meter,
            settle_timeout=args.settle_timeout,
            redis_url=args.redis_url,
            prefix=args.prefix,
        )
        if args.warmup_seconds > 0:
            warmup = Step("warmup", max(args.rate_list[0], 50))
            await step_runner(
                warmup, seconds=args.warmup_seconds, clients=session.clients, report=False
            )
        for number, rate in enumerate(args.rate_list):
            await asyncio.sleep(args.pause)
            log(f"step {number + 1}: {rate:g} msgs/s for {args.step_seconds:g}s")
            step = Step(f"s{number}-{os.getpid()}", rate)
            drained = await step_runner(
                step, seconds=args.step_seconds, clients=session.clients, report=True
            )
            if not drained and number + 1 < len(args.rate_list):
                if args.stop_when_saturated:
                    print(f"stopping: the {rate:g}/s step's backlog did not drain", flush=True)
                    break
                print(
                    f"(the {rate:g}/s step's backlog did not drain: the next step starts on "
                    "restarted servers, an empty layer and new users)",
                    flush=True,
                )
                await session.close()
                users = await fresh_start(args, slots, tag=f"load{os.getpid()}-{number}")
                session = Session(users, slots, meter)
                await session.opened()
    finally:
        await session.close()


def main() -> int:
    args = parse_args()
    print(f"command: {command_line()}")
    print(f"load average at start: {loadavg()} ({os.cpu_count()} cores)")
    setup = prepare_run(args, kind="load", labels=[f"S{n + 1}" for n in range(args.servers)])
    print(f"server logs in {setup.log_dir}")
    try:
        start_servers(setup.slots)
        asyncio.run(run_load(args, setup.users, setup.slots))
    finally:
        stop_servers(setup.slots)
    for slot in setup.slots:
        for life in slot.lives:
            print(f"server {life.name} pid={life.pid}: log problems={len(life.log_problems())}")
            life.print_problems()
    print(f"load average at end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
