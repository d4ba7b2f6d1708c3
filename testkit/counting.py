"""Count what a piece of work costs: SQL statements, commits and Redis commands, in every thread.

Django's CaptureQueriesContext sees one connection; socket work runs on the
DB threads (realtime.db), each with its own. These patch the classes
instead, so the count covers every connection of the process while active.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from redis.asyncio.connection import AbstractConnection


@dataclass
class Costs:
    queries: list[str] = field(default_factory=list)
    commits: int = 0
    redis_commands: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def counting() -> Iterator[Costs]:
    costs = Costs()
    execute, commit = CursorWrapper._execute, BaseDatabaseWrapper.commit
    pack = AbstractConnection.pack_command

    def counted_execute(self, sql, params, *ignored):
        with costs.lock:
            costs.queries.append(sql)
        return execute(self, sql, params, *ignored)

    def counted_commit(self):
        with costs.lock:
            costs.commits += 1
        return commit(self)

    def counted_pack(self, *args):
        with costs.lock:
            name = args[0]
            costs.redis_commands.append(name.decode() if isinstance(name, bytes) else str(name))
        return pack(self, *args)

    CursorWrapper._execute = counted_execute
    BaseDatabaseWrapper.commit = counted_commit
    AbstractConnection.pack_command = counted_pack
    try:
        yield costs
    finally:
        CursorWrapper._execute = execute
        BaseDatabaseWrapper.commit = commit
        AbstractConnection.pack_command = pack
