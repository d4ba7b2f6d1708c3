"""Running ORM work from async code.

`database_sync_to_async` defaults to thread_sensitive=True, which puts every
ORM call of every consumer in a process on one thread, one at a time. Our
services are short independent transactions, so they run on a fixed pool of
DB threads instead, each keeping one connection for its lifetime (bounded:
QW_DB_THREADS connections per process).

The threads run the work with their own context, not a copy of the caller's:
Django keeps connections in a context-aware Local, and under a copied context
a connection opened in the thread is invisible to the thread afterwards and is
never closed (channels#871).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

DB_THREADS = getattr(settings, "QW_DB_THREADS", 8)
executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="qw-db")


def _call_in_db_thread(func: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    for conn in connections.all(initialized_only=True):
        # A connection that saw an error (e.g. the server restarted) is
        # replaced; a healthy one is kept.
        if conn.connection is not None and conn.errors_occurred:
            conn.errors_occurred = False
            if not conn.is_usable():
                conn.close()
    return func(*args, **kwargs)


def run_db(func: Callable[..., Any]) -> Callable[..., Any]:
    """`await run_db(service)(*args)` runs a sync ORM function on a DB thread."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            executor, functools.partial(_call_in_db_thread, func, args, kwargs)
        )

    return call


def close_db_thread_connections() -> None:
    """Close the connection of every DB thread (test teardown, shutdown)."""
    barrier = threading.Barrier(DB_THREADS + 1)

    def close_and_wait() -> None:
        connections.close_all()
        barrier.wait(timeout=10)

    for _ in range(DB_THREADS):
        executor.submit(close_and_wait)
    barrier.wait(timeout=10)
