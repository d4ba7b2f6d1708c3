"""`make cluster N=2`: nginx in front of N server processes on the local PostgreSQL and Redis.

    .venv/bin/python deploy/cluster.py --processes 2 --port 8080

Uses its own database (`qw_cluster`, migrated and seeded with the demo users)
and its own Redis prefix; runs Debian's nginx as a child process with a
config generated from deploy/nginx.conf.template in a temp prefix (the system
nginx service is never started). Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testkit.infra import Nginx, free_port, wait_for  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--port", type=int, default=8080, help="nginx's port")
    parser.add_argument("--host", default="127.0.0.1")
    # The role scripts/ensure_services.sh creates (a local test credential).
    parser.add_argument(
        "--database", default="postgres://qw:qw-test-only@127.0.0.1:5432/qw_cluster"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default=f"qwcluster{os.getpid()}", help="Redis key prefix")
    args = parser.parse_args()

    env = {
        **os.environ,
        "DATABASE_URL": args.database,
        "REDIS_URL": args.redis_url,
        "QW_CHANNEL_PREFIX": args.prefix,
        "SECRET_KEY": os.environ.get("SECRET_KEY", "qw-cluster-local-secret-0123456789abcdef"),
        "QW_TRUSTED_PROXIES": "127.0.0.1,::1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,[::1]",
        "DJANGO_SETTINGS_MODULE": "quantumworks.settings",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DEBUG", None)
    create_database(args.database)
    python = sys.executable
    for command in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        subprocess.run([python, "manage.py", *command], cwd=REPO, env=env, check=True)  # noqa: S603

    servers: list[subprocess.Popen] = []
    ports = [free_port() for _ in range(args.processes)]
    for port in ports:
        servers.append(
            subprocess.Popen(  # noqa: S603
                [python, "-m", "servers", "--port", str(port), "--access-log"],
                cwd=REPO,
                env=env,
                start_new_session=True,  # Ctrl-C reaches them through us, as SIGTERM (4012)
            )
        )
    nginx = Nginx(ports, port=args.port)
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_for(
                lambda port=port: _healthy(port), seconds=60, what=f"server :{port}", process=server
            )
        nginx.start()
        print(
            f"\nQuantumWorks cluster: http://{args.host}:{args.port}/ (nginx, logs in {nginx.dir}) "
            f"-> {args.processes} processes on ports {', '.join(map(str, ports))}; "
            f"database {args.database}, Redis {args.redis_url} prefix {args.prefix}. Ctrl-C stops.",
            flush=True,
        )
        signal.signal(signal.SIGTERM, _interrupt)
        parent = os.getppid()
        while all(server.poll() is None for server in servers) and nginx.running:
            if os.getppid() != parent:  # make was killed without passing the signal on
                raise KeyboardInterrupt
            time.sleep(0.5)
        print("a process exited; stopping the cluster", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping: SIGTERM to every process (sockets close with 4012)", flush=True)
        return 0
    finally:
        nginx.cleanup()
        for server in servers:
            if server.poll() is None:
                server.terminate()
        for server in servers:
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _healthy(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def create_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    sys.exit(main())
