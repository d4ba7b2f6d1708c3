"""Capacity and speed of one server process: W1 sockets, W2 chat, W3 fan-out (`make bench`).

    .venv/bin/python bench/run.py                       # the default runs (a few minutes)
    .venv/bin/python bench/run.py --only w2 --w2-rates 1000 --server uvicorn
    .venv/bin/python bench/run.py --only w1 --profile /tmp/prof   # py-spy while it runs

One server process (`python -m servers`) pinned to one core
(`taskset -c 1`), the Node `ws` load generator (bench/loadgen.mjs) pinned to
the other (`taskset -c 0`); PostgreSQL and Redis local and unpinned. Each run
gets a freshly started server. This script prepares the bench's own database
(emptied: `--db` must contain "bench"), creates the users and mints their
tokens, starts the server, hands the load generator its config and prints one
JSON line per run, then a table.

- W1 capacity: N idle sockets opened at R/s. Failures by cause, connect
  latency (TCP connect → `authenticated`), server CPU per connect and RSS per
  socket (from /proc), then the idle cost of N open sockets over a hold.
- W2 chat: P pairs, r msgs/s for T s, fresh `client_msg_id`s per run.
  Delivered/s, lost, duplicates, end-to-end and ack latency, server CPU per message.
- W3 fan-out: M sockets subscribed to one task, K status changes through
  `PATCH /api/tasks/{id}/status/`: time until all M have each update.
- idle: N sockets open and quiet over a hold spanning two heartbeats; CPU per
  idle socket per second of the server, of the PostgreSQL backends of the
  bench database and of `redis-server` (one Redis for every user of the
  machine: only meaningful on an otherwise quiet machine). The same server's
  CPU with 0 sockets is measured first: the gross figure (all CPU / N) and
  the marginal one ((CPU at N − CPU at 0) / N) are both printed, and the
  hold's 5 s windows, which show a connect tail or a GC pass.

Each workload runs twice, ours then the raw limit (bench/rawlimit.py: a bare
`websockets` server with PyJWT and an INSERT per message, pinned like ours),
and prints the ratio; `--no-peer` skips the raw limit. The load average is
printed before every run: figures taken above ~0.5 measure the other work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CLOCK_TICKS,
    REPO,
    BenchUser,
    ServerSlot,
    bench_env,
    create_users,
    flush_redis_prefix,
    loadavg,
    new_log_dir,
    prepare_database,
    reset_bench_data,
    setup_django,
)

BENCH = REPO / "bench"
SERVER_CORE = "1"
LOADGEN_CORE = "0"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="w1,w2,w3,idle", help="workloads to run, e.g. w1,w3")
    parser.add_argument(
        "--no-peer",
        dest="peer",
        action="store_false",
        help="skip the raw-limit peer (bench/rawlimit.py) and the ratios",
    )
    parser.add_argument("--server", default=None, help="servers --server (default: its default)")
    parser.add_argument("--repeat", type=int, default=1, help="run each workload this many times")
    parser.add_argument("--w1-sockets", type=int, default=10_000)
    parser.add_argument("--w1-rate", type=float, default=500, help="connects per second")
    parser.add_argument(
        "--w1-hold", type=float, default=10, help="seconds the sockets stay open idle"
    )
    parser.add_argument("--w2-pairs", type=int, default=100)
    parser.add_argument("--w2-rates", default="100,1000", help="msgs/s, one run each")
    parser.add_argument("--w2-seconds", type=float, default=20)
    parser.add_argument("--w3-subscribers", type=int, default=1000)
    parser.add_argument("--w3-changes", type=int, default=50)
    parser.add_argument("--idle-sockets", type=int, default=5000)
    parser.add_argument("--idle-rate", type=float, default=500, help="connects per second")
    parser.add_argument(
        "--idle-hold", type=float, default=70, help="seconds measured (two 30 s heartbeats)"
    )
    parser.add_argument(
        "--idle-baseline",
        type=float,
        default=10,
        help="seconds of the server with 0 sockets, measured first (the marginal figure)",
    )
    parser.add_argument(
        "--idle-settle",
        type=float,
        default=2,
        help="seconds after the last connect before the hold is measured",
    )
    parser.add_argument("--port", type=int, default=8150, help="ours; the raw limit port+1, +2")
    parser.add_argument("--db", default="qw_bench", help="the bench's own database (emptied!)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="qwbench", help="Redis key prefix of the server")
    parser.add_argument("--profile", type=Path, help="py-spy the server into this directory")
    parser.add_argument("--json-out", type=Path, help="append the JSON lines to this file too")
    args = parser.parse_args()
    if "bench" not in args.db:
        parser.error("--db must name a bench database (its users are truncated)")
    if not 8100 <= args.port <= 8197:
        parser.error("--port must be within 8100–8197")
    return args


def raise_fd_limit() -> int:
    """10,000 sockets on each side: the server and the load generator inherit this."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (65536, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, soft), max(wanted, hard)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ensure_node_modules() -> None:
    if not (BENCH / "node_modules" / "ws").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BENCH, check=True)


def tokens(users: list[BenchUser]) -> list[dict]:
    return [{"id": user.id, "token": user.token} for user in users]


def make_task(author: BenchUser) -> int:
    from tasks.models import Project, Task

    project = Project.objects.create(author_id=author.id, title="bench project")
    return Task.objects.create(project=project, title="bench task").id


def w3_statuses(count: int) -> list[str]:
    """open → in_progress, then review ↔ in_progress (changes requested) as long as needed."""
    statuses = ["in_progress"]
    while len(statuses) < count:
        statuses.append("review" if statuses[-1] == "in_progress" else "in_progress")
    return statuses[:count]


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.env = bench_env(db_name=args.db, redis_url=args.redis_url, prefix=args.prefix)
        self.log_dir = new_log_dir("run")
        self.results: list[dict] = []
        server_args = ("--server", args.server) if args.server else ()
        self.slot = ServerSlot(
            label="S",
            port=args.port,
            env=self.env,
            log_dir=self.log_dir,
            launcher=("taskset", "-c", SERVER_CORE),
            server_args=server_args,
        )
        raw_port = args.port + 1
        self.raw_slot = ServerSlot(
            label="R",
            port=raw_port,
            env=self.env,
            log_dir=self.log_dir,
            launcher=("taskset", "-c", SERVER_CORE),
            command=(sys.executable, str(BENCH / "rawlimit.py"), "--port", str(raw_port)),
        )

    def run(self, workload: str, label: str, params: dict, *, raw: bool = False) -> dict:
        flush_redis_prefix(self.args.redis_url, self.args.prefix)
        slot = self.raw_slot if raw else self.slot
        # The raw limit answers PATCH on port + 1 (websockets itself answers only GET).
        http_port = slot.port + 1 if raw else slot.port
        print(f"{label}: load average {loadavg()}", file=sys.stderr, flush=True)
        life = slot.start()
        profiler = None
        try:
            slot.wait_ready()
            time.sleep(1)  # start-up work (imports, first DB/Redis connections) settles
            config = {
                "workload": workload,
                "url": f"ws://127.0.0.1:{slot.port}/ws/",
                "http": f"http://127.0.0.1:{http_port}",
                "server_pid": life.pid,
                "clk_tck": CLOCK_TICKS,
                **params,
            }
            safe = label.replace("/", "per").replace("#", "-")
            config_path = self.log_dir / f"{safe}.json"
            config_path.write_text(json.dumps(config))
            profiler = None if raw else self.start_profiler(life.pid, safe)
            started = time.time()
            load_before = loadavg()
            out = subprocess.run(
                [
                    "taskset",
                    "-c",
                    LOADGEN_CORE,
                    "node",
                    str(BENCH / "loadgen.mjs"),
                    str(config_path),
                ],
                capture_output=True,
                text=True,
                timeout=900,
            )
        finally:
            self.stop_profiler(profiler)
            slot.stop()
        sys.stderr.write(out.stderr)
        if out.returncode != 0:
            lines = out.stderr.strip().splitlines() or ["?"]
            errors = [line for line in lines if line.startswith("Error")]
            result = {"error": (errors or lines)[-1]}
        else:
            result = json.loads(out.stdout.strip().splitlines()[-1])
        problems = life.log_problems()
        result = {
            "run": label,
            "workload": workload,
            "server": "rawlimit" if raw else self.args.server or "default",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
            "server_log_problems": len(problems),
            **result,
        }
        for line in problems[:3]:
            sys.stderr.write(f"  server log: {line[:300]}\n")
        line = json.dumps(result)
        print(line, flush=True)
        if self.args.json_out:
            with self.args.json_out.open("a") as file:
                file.write(line + "\n")
        self.results.append(result)
        return result

    def start_profiler(self, pid: int, safe: str) -> subprocess.Popen | None:
        if self.args.profile is None:
            return None
        py_spy = shutil.which("py-spy") or str(REPO / ".venv" / "bin" / "py-spy")
        self.args.profile.mkdir(parents=True, exist_ok=True)
        # Raw (collapsed stacks) for reading and diffing, an SVG for looking at.
        return subprocess.Popen(
            [
                py_spy,
                "record",
                "-p",
                str(pid),
                "--threads",
                "--rate",
                "200",
                # Without it py-spy stops the process for every sample: an idle
                # run measured 26 µs per socket·s with it, 6.8–10.4 without.
                "--nonblocking",
                "--format",
                "raw",
                "-o",
                str(self.args.profile / f"{safe}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @staticmethod
    def stop_profiler(profiler: subprocess.Popen | None) -> None:
        if profiler is None:
            return
        profiler.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            profiler.wait(timeout=30)
        except subprocess.TimeoutExpired:
            profiler.kill()


def fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def print_table(results: list[dict]) -> None:
    print()
    print(
        f"load average {loadavg()} · {os.cpu_count()} cores · server on core {SERVER_CORE}, "
        f"load generator on core {LOADGEN_CORE}"
    )
    header = ("run", "result", "latency p50 / p99 / max", "server cost", "loadgen CPU / lag p99")
    rows = [header]
    for r in results:
        if "error" in r:
            rows.append((r["run"], f"ERROR {r['error']}", "", "", ""))
            continue
        if r["workload"] == "w1":
            lat = r["connect_ms"]
            phase = r["connect_phase"]
            failures = ", ".join(f"{k} {v}" for k, v in r["failures"].items()) or "none"
            rows.append(
                (
                    r["run"],
                    f"{r['ok']:,}/{r['sockets']:,} ok @{r['rate']:g}/s (failures: {failures})",
                    f"connect {fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'])} ms",
                    f"{fmt(r['server_cpu_ms_per_connect'], ' ms', 2)} CPU/connect, "
                    f"{fmt(r['server_rss_kib_per_socket'], ' KiB')}/socket, "
                    f"idle {fmt(r['idle_phase']['server_cpu_pct'], '%')}",
                    f"{fmt(phase['loadgen_cpu_pct'], '%')} / {fmt(r['schedule_lag_ms']['p99'])} ms",
                )
            )
        elif r["workload"] == "w2":
            lat, ack, phase = r["e2e_ms"], r["ack_ms"], r["phase"]
            rows.append(
                (
                    r["run"],
                    f"{fmt(r['delivered_per_s'])}/s delivered of {r['rate']:g}/s, "
                    f"lost {r['lost']}, dup {r['duplicates']}",
                    f"e2e {fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'])} ms "
                    f"(p95 {fmt(lat['p95'])}); ack p50/p99 {fmt(ack['p50'])}/{fmt(ack['p99'])}",
                    f"{fmt(r['server_cpu_us_per_msg'], ' µs')}/msg "
                    f"({fmt(phase['server_cpu_pct'], '%')} of a core)",
                    f"{fmt(phase['loadgen_cpu_pct'], '%')} / {fmt(r['schedule_lag_ms']['p99'])} ms",
                )
            )
        elif r["workload"] == "w3":
            lat = r["all_received_ms"]
            rows.append(
                (
                    r["run"],
                    f"{r['subscribers']:,} subscribers × {r['changes']} changes, "
                    f"incomplete {r['incomplete']}",
                    f"all-received {fmt(lat['p50'])} / {fmt(lat['p99'])} / {fmt(lat['max'])} ms",
                    f"{fmt(r['server_cpu_ms_per_change'], ' ms')} CPU/change",
                    f"{fmt(r['phase']['loadgen_cpu_pct'], '%')} / n/a",
                )
            )
        elif r["workload"] == "idle":
            rows.append(
                (
                    r["run"],
                    f"{r['still_open']:,}/{r['sockets']:,} open over {fmt(r['hold_s'], ' s')}",
                    "",
                    f"{fmt(r['total_us_per_socket_s'], ' µs', 2)} per socket per s "
                    f"(server {fmt(r['server_us_per_socket_s'], '', 2)}, "
                    f"PostgreSQL+Redis {fmt(r['services_us_per_socket_s'], '', 2)}); "
                    f"marginal {fmt(r.get('marginal_total_us_per_socket_s'), ' µs', 2)} "
                    f"(server {fmt(r.get('marginal_server_us_per_socket_s'), '', 2)}); "
                    f"0 sockets: server "
                    f"{fmt(_dig(r, 'zero_sockets.server_ms_per_s'), ' ms/s', 2)}",
                    f"{fmt(r['phase']['loadgen_cpu_pct'], '%')} / n/a",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if index == 0:
            print("-+-".join("-" * width for width in widths))


def _dig(result: dict, path: str):
    value = result
    for key in path.split("."):
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


# What each workload is judged on (issue 18's targets): (name, figure, target ratio).
RATIOS = {
    "w1": [
        ("CPU per connect", "server_cpu_ms_per_connect", 2.5),
        ("RSS per socket", "server_rss_kib_per_socket", 1.6),
        ("connect p99", "connect_ms.p99", None),
    ],
    "w2": [("CPU per message", "server_cpu_us_per_msg", 2.0), ("e2e p99", "e2e_ms.p99", None)],
    "w3": [("all-received p99", "all_received_ms.p99", 2.0)],
    "idle": [
        ("CPU per idle socket·s", "total_us_per_socket_s", None),
        ("marginal CPU per idle socket·s", "marginal_total_us_per_socket_s", None),
    ],
}


def ratio_lines(ours: dict, raw: dict) -> list[str]:
    lines = []
    for name, path, target in RATIOS.get(ours["workload"], []):
        mine, limit = _dig(ours, path), _dig(raw, path)
        if mine is None or not limit:
            lines.append(f"{ours['run']} {name}: ours {mine}, raw limit {limit}: no ratio")
            continue
        verdict = "" if target is None else (" ok" if mine / limit <= target else " MISSED")
        goal = "" if target is None else f" (target ≤ {target:g}×{verdict})"
        lines.append(
            f"{ours['run']} {name}: ours {mine:,.2f}, raw limit {limit:,.2f} → "
            f"{mine / limit:.2f}×{goal}  [load {ours['loadavg_before']} / {raw['loadavg_before']}]"
        )
    return lines


def main() -> None:
    args = parse_args()
    fd_limit = raise_fd_limit()
    ensure_node_modules()
    runner = Runner(args)
    env = runner.env
    prepare_database(env, db_name=args.db)
    setup_django(env)
    reset_bench_data(db_name=args.db)
    workloads = [name.strip() for name in args.only.split(",") if name.strip()]
    tag = f"b{os.getpid()}"
    print(
        f"fd limit {fd_limit}; load average {loadavg()}; logs in {runner.log_dir}", file=sys.stderr
    )

    plan: list[tuple[str, str, dict]] = []
    if "w1" in workloads:
        users = create_users(args.w1_sockets, tag=f"{tag}w1")
        plan.append(
            (
                "w1",
                f"w1-{args.w1_sockets}@{args.w1_rate:g}",
                {"users": tokens(users), "rate": args.w1_rate, "hold_seconds": args.w1_hold},
            )
        )
    if "w2" in workloads:
        users = create_users(2 * args.w2_pairs, tag=f"{tag}w2")
        for rate in [float(r) for r in args.w2_rates.split(",") if r]:
            plan.append(
                (
                    "w2",
                    f"w2-{rate:g}/s",
                    {
                        "users": tokens(users),
                        "rate": rate,
                        "seconds": args.w2_seconds,
                        "warmup": 20,
                        "drain_seconds": 15,
                        "connect_rate": 200,
                    },
                )
            )
    if "w3" in workloads:
        subscribers = create_users(args.w3_subscribers, tag=f"{tag}w3", is_staff=True)
        (author,) = create_users(1, tag=f"{tag}w3author")
        plan.append(
            (
                "w3",
                f"w3-{args.w3_subscribers}x{args.w3_changes}",
                {
                    "users": tokens(subscribers),
                    "author_token": author.token,
                    "statuses": w3_statuses(args.w3_changes),
                    "connect_rate": 500,
                    "pause_ms": 20,
                    "_author": author,
                },
            )
        )
    if "idle" in workloads:
        users = create_users(args.idle_sockets, tag=f"{tag}idle")
        plan.append(
            (
                "idle",
                f"idle-{args.idle_sockets}x{args.idle_hold:g}s",
                {
                    "users": tokens(users),
                    "rate": args.idle_rate,
                    "hold_seconds": args.idle_hold,
                    "baseline_seconds": args.idle_baseline,
                    "settle_seconds": args.idle_settle,
                    # Our database's PostgreSQL backends, and Redis (shared: quiet machine only).
                    "services": [
                        {"comm": "postgres", "cmdline": f" {args.db} "},
                        {"comm": "redis-server", "cmdline": ""},
                    ],
                },
            )
        )
    from django.db import connection

    ratios: list[str] = []
    for repeat in range(args.repeat):
        for workload, label, params in plan:
            params = dict(params)
            if workload == "w2":
                params["run_id"] = f"{tag}r{repeat}x{int(time.time() * 1000) % 10**8}"
            if workload == "w3":
                params["task_id"] = make_task(params.pop("_author"))
                connection.close()
            suffix = f"#{repeat + 1}" if args.repeat > 1 else ""
            ours = runner.run(workload, label + suffix, params)
            if args.peer:
                raw = runner.run(workload, f"{label}{suffix} raw", params, raw=True)
                lines = ratio_lines(ours, raw)
                for line in lines:
                    print(line, file=sys.stderr, flush=True)
                ratios.extend(lines)
    print_table(runner.results)
    if ratios:
        print()
        print("ours / raw limit (bench/rawlimit.py), same run, same cores:")
        for line in ratios:
            print(f"  {line}")


if __name__ == "__main__":
    main()
