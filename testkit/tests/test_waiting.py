"""testkit.eventually: the one way tests wait for what a user would see."""

import itertools

import pytest

from testkit import eventually, eventually_async


def test_eventually_returns_the_first_truthy_value():
    calls = itertools.count(1)
    assert eventually(lambda: max(next(calls) - 2, 0), within=5, interval=0) == 1


def test_eventually_fails_with_what_it_waited_for_and_the_last_value():
    with pytest.raises(AssertionError, match=r"not within 0.1 s: the answer; last value: \[\]"):
        eventually(list, within=0.1, what="the answer")


def test_eventually_retries_the_ignored_errors_only():
    attempts = itertools.count(1)

    def flaky() -> str:
        if next(attempts) < 3:
            raise ConnectionRefusedError
        return "up"

    assert eventually(flaky, within=5, interval=0, ignoring=(OSError,)) == "up"
    with pytest.raises(ZeroDivisionError):
        eventually(lambda: 1 / 0, within=5, ignoring=(OSError,))


def test_eventually_names_the_last_ignored_error_when_time_runs_out():
    def refused() -> None:
        raise ConnectionRefusedError("port 1")

    with pytest.raises(AssertionError, match=r"last value: ConnectionRefusedError\('port 1'\)"):
        eventually(refused, within=0.1, ignoring=(OSError,))


async def test_eventually_async_awaits_a_coroutine_predicate():
    calls = itertools.count(1)

    async def third_call() -> int | None:
        n = next(calls)
        return n if n >= 3 else None

    assert await eventually_async(third_call, within=5, interval=0) == 3


async def test_eventually_async_takes_a_plain_predicate_and_fails_like_the_sync_one():
    assert await eventually_async(lambda: "ready", within=1) == "ready"
    with pytest.raises(AssertionError, match=r"not within 0\.1 s: nothing; last value: 0"):
        await eventually_async(lambda: 0, within=0.1, what="nothing")
