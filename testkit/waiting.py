"""Waiting for what a user would see: poll a condition until it holds or time runs out.

Tests never sleep a fixed time and never assert timings; they wait with a
deadline on an observable state (a frame, a row, a log line, a metric). The
deadline is generous because the machine may be loaded: it only decides how
long a failing test takes, never whether a passing one passes.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

INTERVAL = 0.05


def _failure(what: str | None, predicate: Callable[..., Any], within: float, last: Any) -> str:
    name = what or getattr(predicate, "__qualname__", repr(predicate))
    return f"not within {within} s: {name}; last value: {last!r}"


def eventually(
    predicate: Callable[[], T],
    *,
    within: float,
    what: str | None = None,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """`predicate()`'s first truthy value; AssertionError with the last value after `within` s.

    Exceptions of the types in `ignoring` count as "not yet" (a port that is
    not listening yet); any other exception ends the wait at once (a process
    that died).
    """
    deadline = time.monotonic() + within
    while True:
        try:
            last: Any = predicate()
        except ignoring as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(what, predicate, within, last))
        time.sleep(interval)


async def eventually_async(
    predicate: Callable[[], Awaitable[T] | T],
    *,
    within: float,
    what: str | None = None,
    interval: float = INTERVAL,
    ignoring: tuple[type[BaseException], ...] = (),
) -> T:
    """`eventually` on the event loop: `predicate` may be a coroutine function."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            last: Any = predicate()
            if inspect.isawaitable(last):
                last = await last
        except ignoring as error:
            last = error
        else:
            if last:
                return last
        if loop.time() >= deadline:
            raise AssertionError(_failure(what, predicate, within, last))
        await asyncio.sleep(interval)
