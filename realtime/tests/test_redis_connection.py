"""A Redis command sent without a task of its own (realtime.redis_connection)."""

import asyncio

import pytest
from redis import exceptions

from realtime.redis_client import async_redis, rate_key


async def test_a_command_creates_no_task():
    loop = asyncio.get_running_loop()
    created: list[asyncio.Task] = []
    previous = loop.get_task_factory()

    def counting_factory(loop, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(task)
        return task

    client = async_redis()
    key = rate_key("taskless")
    await client.set(key, "1", px=60_000)  # the connection is open from here on
    loop.set_task_factory(counting_factory)
    try:
        assert await client.get(key) == b"1"
        assert await client.delete(key) == 1
    finally:
        loop.set_task_factory(previous)
    assert created == []


async def test_a_send_to_a_dead_connection_raises_a_redis_error_and_drops_it():
    client = async_redis()
    await client.ping()
    connection = await client.connection_pool.get_connection()
    try:
        connection._writer.transport.abort()
        await asyncio.sleep(0)
        with pytest.raises(exceptions.ConnectionError):
            await connection.send_packed_command(connection.pack_command("PING"))
            await connection.read_response()
        assert not connection.is_connected
    finally:
        await client.connection_pool.release(connection)
    assert await client.ping() is True  # a fresh connection replaces it
