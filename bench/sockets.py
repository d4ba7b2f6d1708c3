"""Per-socket memory and per-connect CPU of one server process (docs/deployment.md).

    .venv/bin/python bench/sockets.py --users 2000 --batch 100 --idle 35

Opens `--users` authenticated sockets to one process in batches (each socket
waits for `authenticated`), reading the process's RSS (/proc/<pid>/status) and
CPU (utime+stime) before and after; then holds them idle for `--idle` seconds
(longer than one heartbeat, so every socket's heartbeat, presence refresh and
catch-up read run at least once) and reports the idle CPU per socket.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    add_setup_arguments,
    check_setup_arguments,
    loadavg,
    prepare_run,
    start_servers,
    stop_servers,
)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def open_sockets(port: int, tokens: list[str], batch: int) -> list:
    from websockets.asyncio.client import connect

    async def one(token: str):
        ws = await connect(
            f"ws://127.0.0.1:{port}/ws/?token={token}",
            compression=None,
            ping_interval=None,
            open_timeout=60,
            proxy=None,
        )
        while '"authenticated"' not in await ws.recv():
            pass
        return ws

    sockets = []
    for start in range(0, len(tokens), batch):
        sockets += await asyncio.gather(*(one(token) for token in tokens[start : start + batch]))
    return sockets


async def measure(args: argparse.Namespace, slot, users) -> None:
    life = slot.current
    await asyncio.sleep(2)
    rss0, cpu0 = rss_bytes(life.pid), life.cpu_now()
    started = time.monotonic()
    sockets = await open_sockets(slot.port, [user.token for user in users], args.batch)
    connect_seconds = time.monotonic() - started
    await asyncio.sleep(2)  # let presence and logging settle
    rss1, cpu1 = rss_bytes(life.pid), life.cpu_now()
    await asyncio.sleep(args.idle)
    cpu2 = life.cpu_now()
    count = len(sockets)
    print(f"command: {' '.join(sys.argv)}")
    print(
        f"sockets={count} opened in {connect_seconds:.1f}s wall "
        f"({count / connect_seconds:.0f}/s, batches of {args.batch})"
    )
    print(
        f"RSS {rss0 / 2**20:.1f} MiB -> {rss1 / 2**20:.1f} MiB: "
        f"{(rss1 - rss0) / count / 1024:.1f} KiB per socket"
    )
    print(f"connect CPU {cpu1 - cpu0:.2f}s: {(cpu1 - cpu0) / count * 1e3:.2f} ms per connect")
    print(
        f"idle CPU {cpu2 - cpu1:.2f}s over {args.idle:.0f}s: "
        f"{(cpu2 - cpu1) / args.idle:.1%} of a core for {count} sockets "
        f"({(cpu2 - cpu1) / args.idle / count * 1e6:.1f} µs per socket per second)"
    )
    print(f"load average: {loadavg()} (2 shared cores: CPU figures are noisy)")
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100, help="concurrent connects")
    parser.add_argument("--idle", type=float, default=35, help="seconds held idle")
    add_setup_arguments(parser, users=2000, port_base=8160)
    args = parser.parse_args()
    check_setup_arguments(parser, args, servers=1)
    setup = prepare_run(args, kind="sockets", labels=["A"])
    try:
        start_servers(setup.slots)
        asyncio.run(measure(args, setup.slots[0], setup.users))
    finally:
        stop_servers(setup.slots)
    return 0


if __name__ == "__main__":
    sys.exit(main())
