"""Private, restartable infrastructure on spare ports: Redis, Sentinel, PostgreSQL, PgBouncer, nginx.

Fault tests, `make chaos` and `make cluster` start their own instances here, in
temporary directories, and stop only those: the shared PostgreSQL (5432) and
Redis (6379) of the machine are never restarted.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from testkit.waiting import eventually

REPO = Path(__file__).resolve().parents[1]
NGINX_TEMPLATE = REPO / "deploy" / "nginx.conf.template"
# Debian's layout; the newest installed major version.
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda path: int(path.parent.name),
    default=Path("/usr/lib/postgresql/15/bin"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, *, seconds: float, what: str, process: subprocess.Popen | None = None):
    """`predicate()`'s first truthy value within `seconds`; fails at once if `process` exits."""

    def ready():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {process.returncode}")
        return predicate()

    return eventually(ready, within=seconds, what=what)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _as_postgres() -> dict:
    """Popen options for what PostgreSQL and PgBouncer refuse to run as root.

    The child itself switches user (no `runuser` in between, which would not
    pass our signals on), so stop() and kill() reach the real process.
    """
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def _owned_tempdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


class _Process:
    """A child process with a log file; stop() ends only this process."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix=f"qw-{type(self).__name__.lower()}-"))
        self.log_path = self.dir / "process.log"

    def _spawn(self, args: list[str], **options) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **options
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.running:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


class RedisServer(_Process):
    def __init__(self, port: int | None = None, *, replica_of: int | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.replica_of = replica_of

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
        ]
        if self.replica_of:
            args += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self._spawn(args)
        wait_for(self.ping, seconds=10, what=f"redis :{self.port}", process=self.process)
        return self

    def ping(self) -> bool:
        import redis

        try:
            client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def restart(self, down_seconds: float = 0.0) -> None:
        self.kill()
        time.sleep(down_seconds)
        self.start()


class RedisSentinel(_Process):
    """One sentinel watching `master_port` (quorum 1), failing over within ~1 s of silence."""

    MASTER = "qwmaster"

    def __init__(self, master_port: int, port: int | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.master_port = master_port

    def start(self) -> RedisSentinel:
        config = self.dir / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
            f"sentinel failover-timeout {self.MASTER} 5000\n"
            f"sentinel parallel-syncs {self.MASTER} 1\n"
        )
        self._spawn(["redis-server", str(config), "--sentinel"])
        wait_for(
            lambda: self.master() is not None, seconds=10, what="sentinel", process=self.process
        )
        return self

    def master(self) -> tuple[str, int] | None:
        import redis

        try:
            client = redis.Redis(
                port=self.port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True
            )
            try:
                address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)
            finally:
                client.close()
        except redis.RedisError:
            return None
        return (address[0], int(address[1])) if address else None


class PostgresCluster(_Process):
    """A throwaway cluster (initdb, trust auth) on a spare port, run as the postgres user."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.data = _owned_tempdir("qw-pgdata-")

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> PostgresCluster:
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            **_as_postgres(),
        )
        return self

    def start(self) -> PostgresCluster:
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._spawn(
            [str(PG_BIN / "postgres"), "-D", str(self.data), *options.split()], **_as_postgres()
        )
        wait_for(self.ready, seconds=30, what=f"postgres :{self.port}", process=self.process)
        return self

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: clients are disconnected at once.
        if self.running:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def cleanup(self) -> None:
        super().cleanup()
        shutil.rmtree(self.data, ignore_errors=True)


class PgBouncer(_Process):
    """PgBouncer in transaction pooling mode in front of `pg_port`."""

    def __init__(self, pg_port: int, port: int | None = None, *, pool_size: int = 10) -> None:
        super().__init__()
        self.dir = _owned_tempdir("qw-pgbouncer-")
        self.log_path = self.dir / "process.log"
        self.port = port or free_port()
        self.pg_port = pg_port
        self.pool_size = pool_size

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PgBouncer:
        (self.dir / "userlist.txt").write_text('"postgres" ""\n')
        config = self.dir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.pg_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.dir}\n"
            "auth_type = trust\n"
            f"auth_file = {self.dir / 'userlist.txt'}\n"
            "pool_mode = transaction\nadmin_users = postgres\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 2000\n"
            "server_reset_query =\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for path in (config, self.dir / "userlist.txt"):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self._spawn(["/usr/sbin/pgbouncer", str(config)], **_as_postgres())
        wait_for(lambda: port_open(self.port), seconds=10, what="pgbouncer", process=self.process)
        return self


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if not found:
        raise RuntimeError("nginx is not installed (scripts/ensure_services.sh installs it)")
    return found


def render_nginx_config(*, listen: str, upstreams: list[str], prefix: Path) -> str:
    """deploy/nginx.conf.template with the listen address, the servers and local paths."""
    text = NGINX_TEMPLATE.read_text()
    # As root, nginx's workers would switch to `nobody`, who cannot write our temp prefix.
    user = "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    replacements = {
        "@@USER@@": user,
        "@@PREFIX@@": str(prefix),
        "@@LISTEN@@": listen,
        "@@UPSTREAM_SERVERS@@": "\n".join(
            f"        server {address} max_fails=0;" for address in upstreams
        ),
    }
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text


class Nginx(_Process):
    """Our own nginx master (`daemon off`, a generated config, a temp prefix)."""

    def __init__(self, upstream_ports: list[int], port: int | None = None) -> None:
        super().__init__()
        self.port = port or free_port()
        self.upstream_ports = upstream_ports

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def start(self) -> Nginx:
        config = self.dir / "nginx.conf"
        config.write_text(
            render_nginx_config(
                listen=f"127.0.0.1:{self.port}",
                upstreams=[f"127.0.0.1:{port}" for port in self.upstream_ports],
                prefix=self.dir,
            )
        )
        binary = nginx_binary()
        checked = subprocess.run(
            [binary, "-t", "-q", "-p", str(self.dir), "-c", str(config)], capture_output=True
        )
        if checked.returncode:
            raise RuntimeError(f"nginx -t: {checked.stderr.decode(errors='replace')}")
        self._spawn([binary, "-p", str(self.dir), "-c", str(config), "-g", "daemon off;"])
        wait_for(lambda: port_open(self.port), seconds=10, what="nginx", process=self.process)
        return self

    def access_log(self) -> str:
        return self._read("access.log")

    def error_log(self) -> str:
        return self._read("error.log")

    def _read(self, name: str) -> str:
        try:
            return (self.dir / name).read_text(errors="replace")
        except OSError:
            return ""
