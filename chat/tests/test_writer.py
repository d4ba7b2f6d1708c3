"""chat/writer.py: concurrent socket sends share one transaction, one failure stays its own.

A batch's transaction is visible in PostgreSQL itself: every row a
transaction inserts carries its id in the `xmin` system column. To make the
batching deterministic, another session holds an EXCLUSIVE lock on the
message table (reads pass, inserts wait): each of the writer's drains takes a
batch and waits on the lock, and every send that arrives meanwhile gathers
for the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from prometheus_client import REGISTRY

from chat.models import ChatMessage
from chat.services import SendRequest
from chat.writer import writer
from conftest import token_for
from realtime import redis_client
from testkit import eventually_async
from testkit.servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = ChatMessage._meta.db_table


def _conninfo() -> dict:
    db = connection.settings_dict
    return {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "dbname": db["NAME"],
    }


async def _until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 10) -> None:
    await eventually_async(condition, within=within, interval=0.02, what=what)


@contextlib.asynccontextmanager
async def inserts_held() -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """Hold every insert into the message table until the block ends.

    Yields `busy(n)`: wait until n writer transactions are waiting on the lock.
    """
    holder = await psycopg.AsyncConnection.connect(**_conninfo())
    watcher = await psycopg.AsyncConnection.connect(**_conninfo(), autocommit=True)
    await holder.execute(f"LOCK TABLE {MESSAGES} IN EXCLUSIVE MODE")

    async def waiting_on_lock() -> int:
        row = await (
            await watcher.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).fetchone()
        return row[0]

    async def busy(count: int) -> None:
        async def reached() -> bool:
            return await waiting_on_lock() == count

        await _until(reached, f"{count} writer transactions waiting on the lock")

    try:
        yield busy
    finally:
        await holder.rollback()
        await holder.close()
        await watcher.close()


def chat_frames_received() -> float:
    """The process's `qw_frames_in_total{type="chat_message"}` (what /metrics shows)."""
    return REGISTRY.get_sample_value("qw_frames_in_total", {"type": "chat_message"}) or 0.0


async def all_submitted(before: float, count: int) -> None:
    """Wait until `count` more chat frames reached their handler.

    The handler submits to the writer in the same step as the count, without
    awaiting anything in between: counted means queued in the writer.
    """

    async def reached() -> bool:
        return chat_frames_received() - before >= count

    await _until(reached, f"{count} chat frames received")


def message(receiver, content: str) -> dict:
    return {
        "type": "chat_message",
        "receiver_id": receiver.id,
        "content": content,
        "client_msg_id": content,
    }


@sync_to_async
def transaction_of_each_message() -> dict[str, str]:
    """content → id of the transaction that inserted the message."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT content, xmin::text FROM {MESSAGES}")
        return dict(cursor.fetchall())


async def fill_the_writer(sockets, receiver, busy) -> None:
    """One send per drain the writer may run at once, each blocked on the lock in its own batch."""
    for index, socket in enumerate(sockets):
        await socket.send(message(receiver, f"busy{index}"))
        await busy(index + 1)


async def test_sends_arriving_while_the_writer_is_busy_commit_in_one_transaction(
    amake_user, open_socket
):
    bob = await amake_user("bob")
    busy_senders = [await amake_user(f"busy{i}") for i in range(writer.concurrency)]
    senders = [await amake_user(f"sender{i}") for i in range(8)]
    busy_sockets = [await open_socket(token=token_for(user)) for user in busy_senders]
    sockets = [await open_socket(token=token_for(user)) for user in senders]
    bob_socket = await open_socket(token=token_for(bob))

    async with inserts_held() as busy:
        await fill_the_writer(busy_sockets, bob, busy)
        before = chat_frames_received()
        for index, socket in enumerate(sockets):
            await socket.send(message(bob, f"m{index}"))
        await all_submitted(before, len(sockets))

    acks = [await socket.receive_type("message_sent") for socket in [*busy_sockets, *sockets]]
    assert len({ack["message_id"] for ack in acks}) == len(acks)
    received = await bob_socket.receive_all("chat_message", len(acks))
    assert sorted(frame["seq"] for frame in received) == list(range(1, len(acks) + 1))

    transactions = await transaction_of_each_message()
    gathered = {transactions[f"m{index}"] for index in range(len(sockets))}
    assert len(gathered) == 1
    busy_ones = {transactions[f"busy{index}"] for index in range(writer.concurrency)}
    assert len(busy_ones) == writer.concurrency
    assert not gathered & busy_ones


async def test_a_send_that_fails_in_a_batch_does_not_fail_the_others(amake_user, caplog):
    """A row PostgreSQL refuses (a NUL, which clean_content would have removed) fails the
    batch's insert; only it errs, with an incident id naming the logged traceback."""
    bob = await amake_user("bob")
    senders = [await amake_user(f"sender{i}") for i in range(3)]
    gone = await amake_user("gone")

    def request(sender_id: int, content: str) -> SendRequest:
        return SendRequest(sender_id=sender_id, receiver_id=bob.id, content=content)

    requests = [
        request(senders[0].id, "m0"),
        request(gone.id, "lo\x00st"),
        request(senders[1].id, "m1"),
    ]
    requests.append(request(senders[2].id, "m2"))
    # Submitted in one step: the first drain takes them all as one batch.
    results = await asyncio.gather(*(writer.submit(r) for r in requests))

    assert [result.error for result in results] == [None, "server_error", None, None]
    stored = await transaction_of_each_message()
    assert sorted(stored) == ["m0", "m1", "m2"]
    ids = await sync_to_async(lambda: dict(ChatMessage.objects.values_list("content", "id")))()
    assert [results[i].message_id for i in (0, 2, 3)] == [ids["m0"], ids["m1"], ids["m2"]]
    logged = [r.getMessage() for r in caplog.records if r.name == "chat.writer"]
    assert logged == [f"chat send failed (incident {results[1].incident_id})"]


async def test_a_sender_deleted_a_moment_ago_is_refused_alone_without_a_traceback(
    amake_user, caplog
):
    """The socket's close is on its way; the send itself must not become a server error."""
    bob, alice, gone = await amake_user("bob"), await amake_user("alice"), await amake_user("gone")
    gone_id = gone.id  # delete() clears it
    await sync_to_async(gone.delete)()
    results = await asyncio.gather(
        writer.submit(SendRequest(sender_id=gone_id, receiver_id=bob.id, content="lost")),
        writer.submit(SendRequest(sender_id=alice.id, receiver_id=bob.id, content="kept")),
    )
    assert [result.error for result in results] == ["user_inactive", None]
    assert sorted(await transaction_of_each_message()) == ["kept"]
    assert not [r for r in caplog.records if r.name == "chat.writer"]


async def test_redis_outage_lets_messages_through_unlimited_and_counts_it(
    amake_user, open_socket, settings, monkeypatch, caplog
):
    settings.QW_RATE_CHAT_PER_MIN = 2
    # The rate limiter's Redis is down (nothing listens there); the layer's stays up.
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(redis_client, "_async_clients", {})
    monkeypatch.setattr(redis_client, "_async_scripts", {})
    alice, bob = await amake_user("alice"), await amake_user("bob")
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))

    caplog.set_level(logging.WARNING)
    labels = {"kind": "redis", "operation": "chat rate limit"}
    counted = REGISTRY.get_sample_value("qw_faults_total", labels) or 0
    # SPEC §10: presence is unknown too, so nobody is treated as away.
    presence = {"kind": "redis", "operation": "chat presence"}
    presence_counted = REGISTRY.get_sample_value("qw_faults_total", presence) or 0
    for index in range(5):
        await alice_socket.send(message(bob, f"m{index}"))
        assert (await alice_socket.receive_type("message_sent"))["client_msg_id"] == f"m{index}"
    received = await bob_socket.receive_all("chat_message", 5)
    assert [frame["content"] for frame in received] == [f"m{index}" for index in range(5)]
    # Each failure is counted; the fault log writes the outage, not a line per batch.
    assert REGISTRY.get_sample_value("qw_faults_total", labels) - counted == 5
    assert REGISTRY.get_sample_value("qw_faults_total", presence) - presence_counted == 5
    assert not [r for r in caplog.records if r.name == "chat.writer"]
    assert len([r for r in caplog.records if r.name == "quantumworks.faults"]) <= 1
