"""The two presence stores follow the same rules (presence/store.py).

Redis (every process, one Lua call per decision, Redis's clock) and process
memory (the single-process demo, a lock, the process clock): each test runs
against both. `touch` / `leave` return whether contacts must be told online /
offline; `due` lists users whose sockets may all have expired; `live_among`
is what GET /api/presence/ reports.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest

import presence.store
from presence.store import MemoryStore, RedisStore
from testkit import eventually_async
from testkit.counting import counting

SHORT = 0.3  # seconds a socket counts without a heartbeat, in the expiry tests
LONG = 60.0

_user_ids = itertools.count(1)


@pytest.fixture(params=["redis", "process memory"])
def store(request, settings):
    if request.param == "redis":
        # Keys of this test only (due() reads a whole index), under the run's prefix
        # so the session's cleanup removes them.
        settings.QW_CHANNEL_PREFIX = f"{settings.QW_CHANNEL_PREFIX}:stores{uuid.uuid4().hex[:8]}"
        return RedisStore()
    return MemoryStore()


@pytest.fixture
def user():
    return lambda: next(_user_ids)


async def live(store, *user_ids: int) -> set[int]:
    return await asyncio.to_thread(store.live_among, list(user_ids))


async def until_gone(store, user_id: int, within: float = 5) -> None:
    """Wait until the user no longer counts as live (their sockets expired)."""

    async def gone() -> bool:
        return not await live(store, user_id)

    await eventually_async(gone, within=within, what=f"user {user_id} expired")


async def test_the_first_socket_announces_online_and_later_ones_do_not(store, user):
    alice = user()
    assert await store.touch(user_id=alice, socket="tab1", ttl=LONG) is True
    assert await store.touch(user_id=alice, socket="tab2", ttl=LONG) is False
    assert await store.touch(user_id=alice, socket="tab1", ttl=LONG) is False  # a heartbeat
    assert await store.is_announced(user_id=alice) is True
    assert await live(store, alice) == {alice}


async def test_users_are_independent(store, user):
    alice, bob = user(), user()
    assert await store.touch(user_id=alice, socket="a", ttl=LONG) is True
    assert await store.touch(user_id=bob, socket="b", ttl=LONG) is True
    assert await store.leave(user_id=alice, socket="a") is True
    assert await live(store, alice, bob) == {bob}


async def test_only_the_last_socket_leaving_announces_offline_once(store, user):
    alice = user()
    await store.touch(user_id=alice, socket="tab1", ttl=LONG)
    await store.touch(user_id=alice, socket="tab2", ttl=LONG)
    assert await store.leave(user_id=alice, socket="tab1") is False
    assert await live(store, alice) == {alice}
    assert await store.leave(user_id=alice, socket="tab2") is True
    assert await store.leave(user_id=alice, socket="tab2") is False
    assert await store.is_announced(user_id=alice) is False
    assert await live(store, alice) == set()


async def test_a_leave_of_a_user_never_announced_is_quiet(store, user):
    assert await store.leave(user_id=user(), socket="never-opened") is False


async def test_after_offline_the_next_socket_announces_online_again(store, user):
    alice = user()
    await store.touch(user_id=alice, socket="tab1", ttl=LONG)
    assert await store.leave(user_id=alice, socket="tab1") is True
    assert await store.touch(user_id=alice, socket="tab2", ttl=LONG) is True


async def test_expired_sockets_stop_counting_and_one_sweep_announces_them(store, user):
    alice, bob = user(), user()
    await store.touch(user_id=alice, socket="dead-process", ttl=SHORT)
    await store.touch(user_id=bob, socket="alive", ttl=LONG)
    assert await live(store, alice, bob) == {alice, bob}
    await until_gone(store, alice)

    assert await store.due(limit=10) == [alice]
    # Two processes sweep: the leave without a socket lets exactly one win.
    assert await store.leave(user_id=alice, socket="") is True
    assert await store.leave(user_id=alice, socket="") is False
    assert await store.due(limit=10) == []
    assert await live(store, alice, bob) == {bob}


async def test_a_live_socket_outlasts_an_expired_one_and_its_leave_announces_offline(store, user):
    alice, clock = user(), user()
    await store.touch(user_id=alice, socket="stale", ttl=SHORT)
    await store.touch(user_id=clock, socket="stale", ttl=SHORT)  # expires with alice's "stale"
    await store.touch(user_id=alice, socket="fresh", ttl=LONG)
    await until_gone(store, clock)

    assert await live(store, alice) == {alice}
    assert await store.leave(user_id=alice, socket="fresh") is True  # "stale" no longer counts


async def test_a_socket_after_an_unswept_expiry_does_not_announce_online_twice(store, user):
    """Contacts were never told offline, so they must not hear a second online."""
    alice = user()
    assert await store.touch(user_id=alice, socket="old", ttl=SHORT) is True
    await until_gone(store, alice)
    assert await store.touch(user_id=alice, socket="new", ttl=LONG) is False
    assert await store.due(limit=10) == []  # the new socket's expiry is the user's now


async def test_due_returns_at_most_the_limit(store, user):
    users = [user() for _ in range(3)]
    for user_id in users:
        await store.touch(user_id=user_id, socket="s", ttl=SHORT)
    for user_id in users:
        await until_gone(store, user_id)
    due = await store.due(limit=2)
    assert len(due) == 2
    assert set(due) <= set(users)


async def test_live_among_reports_only_the_users_asked_about(store, user):
    alice, bob = user(), user()
    await store.touch(user_id=alice, socket="s", ttl=LONG)
    await store.touch(user_id=bob, socket="s", ttl=LONG)
    assert await live(store) == set()
    assert await live(store, alice, user()) == {alice}


async def test_a_heartbeat_batch_touches_like_one_touch_per_socket(store, user, monkeypatch):
    monkeypatch.setattr(presence.store, "TOUCH_MANY_CHUNK", 2)  # the batch spans script calls
    alice, bob, carol = user(), user(), user()
    assert await store.touch(user_id=bob, socket="b", ttl=LONG) is True
    entries = [(alice, "a1"), (bob, "b"), (alice, "a2"), (carol, "c")]
    # alice's first socket announces her, her second in the same batch does not
    assert await store.touch_many(entries=entries, ttl=LONG) == [True, False, False, True]
    assert await store.touch_many(entries=entries, ttl=LONG) == [False] * 4
    assert await live(store, alice, bob, carol) == {alice, bob, carol}
    assert await store.leave(user_id=alice, socket="a1") is False
    assert await store.leave(user_id=alice, socket="a2") is True


async def test_a_heartbeat_batch_is_one_script_call_per_chunk(user, settings):
    settings.QW_CHANNEL_PREFIX = f"{settings.QW_CHANNEL_PREFIX}:stores{uuid.uuid4().hex[:8]}"
    store = RedisStore()
    entries = [(user(), f"s{n}") for n in range(presence.store.TOUCH_MANY_CHUNK + 1)]
    await store.touch_many(entries=entries[:1], ttl=LONG)  # loads the script
    with counting() as costs:
        flags = await store.touch_many(entries=entries, ttl=LONG)
    assert flags == [False] + [True] * presence.store.TOUCH_MANY_CHUNK
    assert costs.redis_commands == ["EVALSHA", "EVALSHA"]
