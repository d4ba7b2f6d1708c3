"""Expected faults: Redis or PostgreSQL unreachable, logged as an outage, not per failure.

Every place that talks to Redis or PostgreSQL and can go on without it (the
rate limit fails open, a publish is repaired from the inbox by the heartbeat,
a connect is closed with 4011 so the client comes back later, a send answers
`server_error` with `retry_after`) hands the error to `report` instead of
logging it:

    except Exception as error:
        if not faults.report("publish", error):
            raise  # not an outage: a bug, with its traceback

For each dependency and process, that logs one line when the outage starts
(which operation failed and why, no traceback), at most one reminder every
`REMIND_SECONDS` while failures continue (with their count), and one line when
the dependency answers again: a probe thread, started by the first failure,
checks once a second, so the end is logged even when no traffic comes to
notice it. `qw_faults_total{kind, operation}` counts every failure, logged or
not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime import metrics

logger = logging.getLogger("quantumworks.faults")

REMIND_SECONDS = 5.0
PROBE_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 2.0

# SPEC §5: a socket the server cannot serve right now (a dependency is down).
# 1011 ("internal error") is the RFC's code, but autobahn (daphne) refuses any
# application close code outside 1000 and 3000–4999; 4011 mirrors it as 4012
# mirrors 1012. The shipped client retries any other code with backoff and
# resumes from last_seq, which is what an outage needs.
UNAVAILABLE_CLOSE_CODE = 4011
UNAVAILABLE_CLOSE_REASON = "server_error"


def redis_reachable() -> bool:
    """The counters' Redis and every channel-layer shard answer PING."""
    if not settings.REDIS_URL:
        return True
    from realtime.redis_client import layer_clients, new_sync_client

    options = {"socket_timeout": PROBE_TIMEOUT_SECONDS, "socket_connect_timeout": 2}
    clients = []
    try:
        clients = [new_sync_client(**options), *layer_clients(**options)]
        return all(client.ping() for client in clients)
    except Exception:  # noqa: BLE001 - any failure means not reachable
        return False
    finally:
        for client in clients:
            client.close()


def database_reachable() -> bool:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means not reachable
        return False


def _database_outage(error: BaseException) -> bool:
    """Connection failures only: a deadlock or a constraint is not an outage."""
    if not isinstance(error, OperationalError | InterfaceError):
        return False
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    # None: no server answer at all (refused, reset, pool timeout);
    # 08: connection exception; 57P: the server is shutting down or starting.
    return sqlstate is None or sqlstate.startswith(("08", "57P"))


class Dependency:
    """One dependency's outage state in this process (thread-safe: DB threads report too)."""

    def __init__(
        self,
        kind: str,
        *,
        reachable: Callable[[], bool],
        remind_seconds: float = REMIND_SECONDS,
        probe_seconds: float = PROBE_SECONDS,
    ) -> None:
        self.kind = kind
        self.reachable = reachable
        self.remind_seconds = remind_seconds
        self.probe_seconds = probe_seconds
        self._lock = threading.Lock()
        self.down_since: float | None = None
        self.failures = 0  # in this outage
        self.unlogged = 0  # since the last line
        self.last_line = 0.0
        self.last_error = ""
        self.last_failure_at = float("-inf")  # monotonic: what the heartbeat trusts after

    def failed(self, operation: str, error: BaseException) -> None:
        metrics.FAULTS.labels(self.kind, operation).inc()
        now = time.monotonic()
        what = f"{operation}: {type(error).__name__}: {error}"
        with self._lock:
            self.failures += 1
            self.last_error = what
            self.last_failure_at = now
            if self.down_since is None:
                self.down_since = now
                self.failures, self.unlogged, self.last_line = 1, 0, now
                start_probe = True
            elif now - self.last_line >= self.remind_seconds:
                count, self.unlogged, self.last_line = self.unlogged + 1, 0, now
                seconds = now - self.down_since
                start_probe = False
            else:
                self.unlogged += 1
                return
        if start_probe:
            logger.error("%s unreachable (%s)", self.kind, what)
            threading.Thread(target=self._probe, name=f"qw-probe-{self.kind}", daemon=True).start()
        else:
            logger.error(
                "%s still unreachable after %.0f s: %d failures since the last line (last: %s)",
                self.kind,
                seconds,
                count,
                what,
            )

    def _probe(self) -> None:
        while True:
            time.sleep(self.probe_seconds)
            if self.reachable():
                break
        with self._lock:
            seconds = time.monotonic() - (self.down_since or time.monotonic())
            failures, self.down_since = self.failures, None
        logger.warning(
            "%s reachable again after %.1f s (%d failures while down)", self.kind, seconds, failures
        )


def _database_probe() -> bool:
    from django.db import connection

    try:
        return database_reachable()
    finally:
        connection.close()


REDIS = Dependency("redis", reachable=redis_reachable)
DATABASE = Dependency("postgresql", reachable=_database_probe)


def dependency_of(error: BaseException) -> Dependency | None:
    """Which dependency's outage `error` is, if it is one."""
    if isinstance(error, RedisConnectionError | RedisTimeoutError):
        return REDIS
    if _database_outage(error):
        return DATABASE
    return None


def report(operation: str, error: BaseException) -> bool:
    """Count an outage's failure (and log it as the outage needs); False if it is not one."""
    dependency = dependency_of(error)
    if dependency is None:
        return False
    dependency.failed(operation, error)
    return True


class LibraryFaults(logging.Filter):
    """A library's own traceback for an outage becomes a `report` (channels-redis's
    receive loop logs one per shard per second while Redis is down)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return error is None or not report(record.name, error)
