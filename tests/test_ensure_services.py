"""scripts/ensure_services.sh on a fresh Debian PostgreSQL: scram over TCP, peer locally.

A throwaway cluster (pg_createcluster on a free port, the shared 15/main is
never touched) stands in for a fresh machine; the script must leave a role the
suite can log in with over TCP, one that creates and drops its test database.
Needs root, as the script does when it installs PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from testkit.servers import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ensure_services.sh"


def _run(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def scram_cluster():
    """A fresh cluster: TCP logins need a scram password, the local socket is peer-only."""
    version = max(os.listdir("/etc/postgresql"), key=int)
    name, port = f"qwscram{os.getpid()}", free_port()
    created = _run(
        "pg_createcluster", version, name, "-p", str(port),
        "--", "--auth-host=scram-sha-256", "--auth-local=peer",
    )  # fmt: skip
    assert created.returncode == 0, created.stdout + created.stderr
    try:
        started = _run("pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start")
        assert started.returncode == 0, started.stdout + started.stderr
        yield port
    finally:
        _run("pg_dropcluster", "--stop", version, name)


def _ensure(port: int, password: str, *, database: str = "qw") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "QW_PG_PORT": str(port),
        "QW_DB_PASSWORD": password,
        "QW_DB_NAME": database,
    }
    return _run(str(SCRIPT), "postgres", env=env, cwd=ROOT)


def test_fresh_cluster_refuses_a_password_less_tcp_login(scram_cluster):
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host="127.0.0.1", port=scram_cluster, user="postgres", dbname="postgres")


def test_script_leaves_a_password_role_that_creates_and_drops_databases(scram_cluster):
    password = secrets.token_urlsafe(12)
    first = _ensure(scram_cluster, password)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "creating PostgreSQL role qw" in first.stdout

    tcp = {"host": "127.0.0.1", "port": scram_cluster, "user": "qw", "password": password}
    with psycopg.connect(**tcp, dbname="qw", autocommit=True) as conn:
        conn.execute("CREATE DATABASE test_qw_probe")
    with psycopg.connect(**tcp, dbname="test_qw_probe") as conn:
        conn.execute("CREATE TABLE t (id int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    with psycopg.connect(**tcp, dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE test_qw_probe")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**{**tcp, "password": "wrong"}, dbname="qw")

    again = _ensure(scram_cluster, password)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "creating" not in again.stdout  # the role already works: nothing to do


def test_suite_creates_terminates_and_drops_its_test_database_with_that_role(scram_cluster):
    """pytest-django with the script's role: create test_qw, a server process, teardown."""
    password = secrets.token_urlsafe(12)
    assert _ensure(scram_cluster, password, database="qwsuite").returncode == 0
    url = f"postgres://qw:{password}@127.0.0.1:{scram_cluster}/qwsuite"
    # Its own Redis prefix: the inner run's teardown deletes its prefix's keys.
    env = {k: v for k, v in os.environ.items() if k != "QW_CHANNEL_PREFIX"}
    env["DATABASE_URL"] = url
    suite = _run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "servers/tests/test_multiprocess.py::test_message_sent_on_one_process_arrives_on_the_other",
        cwd=ROOT, env=env,
    )  # fmt: skip
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]
    assert "1 passed" in suite.stdout
    with psycopg.connect(url.replace("/qwsuite", "/postgres")) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'test_%'")
        assert left.fetchall() == []
