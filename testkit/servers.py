"""Real server processes for tests and bench: `python -m servers`.

The one way tests and bench/ start a server: `spawn_server` and `wait_healthy`
are the primitives (bench/ keeps its own bookkeeping around them); tests use
`ServerProcess`. By default it shares the test database
(committed data only: use django_db(transaction=True)) and the test run's
Redis prefix, so events cross processes exactly as in production; with
`services=False` it runs on the embedded defaults (no DATABASE_URL/REDIS_URL
unless given).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from testkit.infra import free_port
from testkit.waiting import eventually

ROOT = Path(__file__).resolve().parents[1]


def spawn_server(
    port: int,
    *,
    env: dict[str, str],
    log: IO[Any],
    host: str = "127.0.0.1",
    args: Sequence[str] = (),
    prefix: Sequence[str] = (),
    new_session: bool = False,
) -> subprocess.Popen:
    """Start `python -m servers` (this interpreter) from the repository root.

    `prefix` wraps the command (e.g. `taskset -c 1`); `new_session` keeps a
    Ctrl-C of the caller from reaching the server first.
    """
    return subprocess.Popen(
        [
            *prefix,
            sys.executable,
            "-m",
            "servers",
            "--host",
            host,
            "--port",
            str(port),
            *args,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=new_session,
    )


def wait_healthy(
    process: subprocess.Popen,
    port: int,
    *,
    timeout: float,
    describe: Callable[[], str] = str,
) -> None:
    """Return once GET /healthz answers; raise if the process exits first or time runs out."""

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited: {describe()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True

    try:
        eventually(healthy, within=timeout, interval=0.1, ignoring=(OSError,))
    except AssertionError:
        raise RuntimeError(
            f"server on port {port} not ready after {timeout}s: {describe()}"
        ) from None


def database_url() -> str:
    """The test database's URL, credentials included (a scram cluster needs the password)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class ServerProcess:
    def __init__(
        self,
        port: int | None = None,
        *,
        access_log: bool = False,
        services: bool = True,
        **env: str,
    ) -> None:
        self.access_log = access_log
        self.services = services
        self.port = port or free_port()
        self.extra_env = env
        self.process: subprocess.Popen | None = None
        # A file, not a pipe: nobody reads a pipe, and a full one blocks the server.
        self.log = tempfile.TemporaryFile()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> ServerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "quantumworks.settings",
        }
        if self.services:
            env.update(
                DATABASE_URL=database_url(),
                REDIS_URL=settings.REDIS_URL,
                QW_CHANNEL_PREFIX=settings.QW_CHANNEL_PREFIX,
                SECRET_KEY=settings.SECRET_KEY,
                QW_DB_POOL="0",
            )
        else:
            env.pop("DATABASE_URL", None)
            env.pop("REDIS_URL", None)
        env.update(self.extra_env)
        self.process = spawn_server(
            self.port,
            env=env,
            log=self.log,
            args=["--access-log"] if self.access_log else [],
        )
        wait_healthy(
            self.process, self.port, timeout=timeout, describe=lambda: self.output()[-2000:]
        )
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode if self.process else None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_for_output(self, *texts: str, timeout: float = 10) -> str:
        """The output once every text is in it (log lines are written after the response)."""
        try:

            def logged() -> str:
                output = self.output()
                return output if all(text in output for text in texts) else ""

            return eventually(logged, within=timeout)
        except AssertionError:
            raise AssertionError(f"never logged {texts}; output: {self.output()[-2000:]}") from None

    def metric(self, name: str) -> float:
        """One unlabelled sample from the process's /metrics."""
        with urllib.request.urlopen(f"{self.http_url}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise AssertionError(f"no metric {name}")

    def wait_for_metric(self, name: str, value: float, timeout: float = 10) -> None:
        eventually(lambda: self.metric(name) == value, within=timeout, what=f"{name} == {value}")

    def rss_bytes(self) -> int:
        """Resident memory of the server process (VmRSS)."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")
