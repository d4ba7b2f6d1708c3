"""The fault log (realtime.faults): what counts as an outage, and how little it writes about one."""

import logging
import re
import threading
import time

import psycopg
import pytest
import redis
from django.db import OperationalError, connection
from prometheus_client import REGISTRY

from realtime import faults
from testkit.infra import free_port, wait_for


def test_a_refused_redis_connection_is_a_redis_outage():
    client = redis.Redis(port=free_port(), socket_connect_timeout=1)
    with pytest.raises(redis.RedisError) as refused:
        client.ping()
    assert faults.dependency_of(refused.value) is faults.REDIS


@pytest.mark.django_db(transaction=True)
def test_a_session_ended_by_the_server_is_an_outage_and_a_query_timeout_is_not():
    with pytest.raises(OperationalError) as timed_out, connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 10")
        cursor.execute("SELECT pg_sleep(1)")
    # The server answered (57014, query canceled): a bug or a slow query, with its traceback.
    assert faults.dependency_of(timed_out.value) is None

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"],
        dbname=db["NAME"],
        autocommit=True,
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # What a server shutdown or a restart does to an open session (57P01 or no answer).
    with pytest.raises(OperationalError) as ended, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    connection.close()
    assert faults.dependency_of(ended.value) is faults.DATABASE


def test_an_outage_is_one_line_then_counted_reminders_then_one_line_when_it_ends(caplog):
    caplog.set_level(logging.INFO, logger="quantumworks.faults")
    answers = threading.Event()
    dependency = faults.Dependency(
        "testdep", reachable=answers.is_set, remind_seconds=0.3, probe_seconds=0.02
    )
    error = redis.ConnectionError("Connection refused.")
    failures = 0
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        dependency.failed("publish", error)
        failures += 1
        time.sleep(0.002)
    answers.set()

    def lines() -> list[str]:
        # this dependency's lines only: a real one (redis) may end an outage of an earlier test
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "quantumworks.faults" and r.getMessage().startswith("testdep ")
        ]

    wait_for(lambda: "reachable again" in lines()[-1], seconds=5, what="the end of the outage")
    first, *reminders, last = lines()
    assert first == "testdep unreachable (publish: ConnectionError: Connection refused.)"
    # At most one line per 0.3 s while it lasted, each with the failures it stands for.
    assert 1 <= len(reminders) <= 4, reminders
    counts = [
        int(re.search(r": (\d+) failures since the last line", line)[1]) for line in reminders
    ]
    assert all(count > 1 for count in counts) and 1 + sum(counts) <= failures
    assert re.fullmatch(
        rf"testdep reachable again after [\d.]+ s \({failures} failures while down\)", last
    )
    assert (
        REGISTRY.get_sample_value("qw_faults_total", {"kind": "testdep", "operation": "publish"})
        == failures
    )
