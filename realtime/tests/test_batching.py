"""realtime.batching: the requests of one loop iteration answered by one call."""

import asyncio

import pytest

from realtime.batching import LoopBatcher


async def test_submits_of_one_iteration_share_one_flush_and_later_ones_get_the_next():
    calls: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: list[int]) -> list[int]:
        calls.append(items)
        await release.wait()  # Redis answering
        return [item * 10 for item in items]

    batcher: LoopBatcher[int, int] = LoopBatcher(flush)
    first = [asyncio.ensure_future(batcher.submit(n)) for n in range(3)]
    while not calls:
        await asyncio.sleep(0)
    late = asyncio.ensure_future(batcher.submit(3))  # while the first flush awaits
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*first, late) == [0, 10, 20, 30]
    assert calls == [[0, 1, 2], [3]]


async def test_a_failed_flush_fails_every_waiting_submit():
    async def flush(items: list[str]) -> list[str]:
        raise ConnectionError("redis down")

    batcher: LoopBatcher[str, str] = LoopBatcher(flush)
    results = await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)
    assert [type(result) for result in results] == [ConnectionError, ConnectionError]
    with pytest.raises(ConnectionError):
        await batcher.submit("c")  # and the next batch is tried again
