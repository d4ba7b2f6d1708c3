"""The per-process chat writer: concurrent sends share one transaction.

Each server process has one event loop; sends from all of its sockets queue
here. While a batch is being written the next one gathers, so under load one
transaction (one seq upsert, one event insert) carries many messages, and when
idle a message is written at once. A connection awaits its own result before
reading its next frame, so one connection's messages are stored in the order
it sent them.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from redis.exceptions import RedisError

from chat.services import SendRequest, SendResult, direct_receivers, messages_send_batch
from notifications.offline import away_among_async, away_among_script
from realtime import faults, ratelimit
from realtime.db import run_db
from realtime.incidents import new_incident_id
from realtime.publisher import publisher
from realtime.redis_client import scripts_together

logger = logging.getLogger(__name__)


def server_error(what: str, error: Exception) -> SendResult:
    """Not stored (e.g. the database is restarting): the client sends it again,
    with the same client_msg_id, after retry_after seconds.

    An outage goes to the fault log (realtime.faults); anything else logs its
    traceback under an incident id the sender is told."""
    if faults.report(what, error):
        return SendResult(error="server_error", retry_after=1.0)
    incident = new_incident_id()
    logger.error("%s failed (incident %s)", what, incident, exc_info=error)
    return SendResult(error="server_error", retry_after=1.0, incident_id=incident)


async def _limits_and_presence(
    keys: list[str], receivers: set[int]
) -> tuple[list[float | None] | BaseException, set[int] | BaseException]:
    """The rate limit and the receivers' presence in one EVALSHA (issue 18: one
    command and no task per batch, where two concurrent calls took two of each).
    A Redis failure fails both; the caller treats each as before."""
    rate_call, read_waits = ratelimit.hit_many_script(
        keys, limit=settings.QW_RATE_CHAT_PER_MIN, window_seconds=60
    )
    calls = [rate_call]
    if receivers:
        presence_call, read_away = away_among_script(receivers)
        calls.append(presence_call)
    try:
        answers = await scripts_together(calls)
    except Exception as error:  # noqa: BLE001 (the caller sorts outages from bugs)
        return error, error if receivers else set()
    return read_waits(answers[0]), read_away(answers[1]) if receivers else set()


async def _send_batch(requests: list[SendRequest], away: set[int]) -> list[SendResult]:
    """Store on a DB thread; publish the committed events from the loop (no hand-off
    from the thread, realtime.publisher.Publisher.collecting)."""
    results, messages = await run_db(publisher.collecting(messages_send_batch))(requests, away=away)
    publisher.publish(messages)
    return results


class MessageWriter:
    def __init__(self, *, max_batch: int = 200, concurrency: int = 2) -> None:
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pending: list[tuple[SendRequest, asyncio.Future[SendResult]]] = []
        self.in_flight = 0
        self.tasks: set[asyncio.Task] = set()

    async def submit(self, request: SendRequest) -> SendResult:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:  # a new loop (tests make one per test)
            self.loop, self.pending, self.in_flight = loop, [], 0
        future: asyncio.Future[SendResult] = loop.create_future()
        self.pending.append((request, future))
        if self.in_flight < self.concurrency:
            self.in_flight += 1
            task = loop.create_task(self._drain())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self.pending:
                batch, self.pending = (
                    self.pending[: self.max_batch],
                    self.pending[self.max_batch :],
                )
                try:
                    results = await self._write(batch)
                except Exception as error:  # noqa: BLE001 (server_error logs it); every sender gets an answer
                    results = [server_error("chat batch", error)] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.in_flight -= 1

    async def _write(self, batch) -> list[SendResult]:
        """Rate-limit the batch and ask who of its receivers is away (one Redis
        round trip), then store what is allowed."""
        keys = [f"chat:{request.sender_id}" for request, _ in batch]
        receivers = direct_receivers([request for request, _ in batch])
        limited: list[float | None] | BaseException
        away: set[int] | BaseException
        if settings.REDIS_URL:
            limited, away = await _limits_and_presence(keys, receivers)
        else:
            limited, away = await asyncio.gather(
                ratelimit.hit_many(keys, limit=settings.QW_RATE_CHAT_PER_MIN, window_seconds=60),
                away_among_async(receivers),
                return_exceptions=True,
            )
        if isinstance(limited, BaseException):
            if not isinstance(limited, RedisError | OSError):
                raise limited
            # Redis unreachable: storing still works and clients resume later,
            # so the limit fails open rather than refusing every message.
            if not faults.report("chat rate limit", limited):
                logger.warning(
                    "rate limit unavailable (%r); batch of %d not limited", limited, len(batch)
                )
            limited = [None] * len(batch)
        if isinstance(away, BaseException):
            if not isinstance(away, RedisError | OSError):
                raise away
            # Presence unknown: nobody is treated as away (no push or email
            # for this batch) rather than everybody (a push to every open tab).
            if not faults.report("chat presence", away):
                logger.warning(
                    "presence unavailable (%r); batch of %d owes no offline delivery",
                    away,
                    len(batch),
                )
            away = set()
        waits = limited
        allowed = [request for (request, _), wait in zip(batch, waits, strict=True) if wait is None]
        stored = iter(await self._store(allowed, away) if allowed else [])
        return [
            next(stored) if wait is None else SendResult(error="rate_limited", retry_after=wait)
            for wait in waits
        ]

    async def _store(self, requests: list[SendRequest], away: set[int]) -> list[SendResult]:
        try:
            return await _send_batch(requests, away)
        except Exception as error:  # noqa: BLE001 (retried one by one, each failure logged)
            if len(requests) == 1 or faults.dependency_of(error) is not None:
                # One by one would fail the same way during an outage.
                return [server_error("chat send", error)] * len(requests)
        # One bad request must not fail the others: retry them one by one.
        results = []
        for request in requests:
            try:
                results.append((await _send_batch([request], away))[0])
            except Exception as error:  # noqa: BLE001 (server_error logs it)
                results.append(server_error("chat send", error))
        return results


writer = MessageWriter(
    max_batch=getattr(settings, "QW_WRITER_MAX_BATCH", 200),
    concurrency=getattr(settings, "QW_WRITER_CONCURRENCY", 2),
)
