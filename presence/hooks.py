"""Presence (SPEC §5 `presence`): the socket hooks, the announcements, the sweeper.

A user is online while at least one of their sockets, on any server process,
is alive. Each socket is an entry in its user's set with an expiry that the
socket's heartbeat pushes forward (TTL_HEARTBEATS × the heartbeat interval),
so the sockets of a server process that died stop counting by themselves.

Contacts hear transitions only: `online: true` when a user's first live
socket appears, `online: false` when the last one goes. Whether an add or a
removal is a transition is decided atomically where the state lives (one Lua
call in Redis; a lock in process memory for the single-process demo), so two
tabs racing on two processes still give exactly one of each. An "announced"
index (user → latest expiry of their sockets) records who contacts were told
is online: transitions flip it, so announcements alternate per user. Every
process with open sockets sweeps that index once per heartbeat interval for
users whose sockets all expired without closing (a killed process) and
announces them offline — the Lua call lets exactly one process win each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat.selectors import contact_ids
from presence.store import current_store
from realtime import faults
from realtime.batching import LoopBatcher
from realtime.db import run_db
from realtime.outbox import send_ephemeral_rollback_unsafe, user_group

logger = logging.getLogger(__name__)

# A socket counts for this many heartbeat intervals after its last beat: one
# late or lost beat does not flap the user offline.
TTL_HEARTBEATS = 2.5
SWEEP_BATCH = 200
# Closes after which the client reconnects at once (4002 token_expired: refresh
# and reconnect; 4012 service_restart: another node). The socket's entry is
# left to expire instead of removed: it bridges the gap until the new socket's
# entry appears, so contacts see no offline/online flap on every deploy or
# token expiry. A client that does not come back goes offline at the expiry.
RECONNECT_CLOSE_CODES = frozenset({4002, 4012})


CONTACTS_READ = "presence.contacts"


def _ttl_seconds() -> float:
    return TTL_HEARTBEATS * float(settings.QW_HEARTBEAT_SECONDS)


# --- announcing ------------------------------------------------------------------
async def _announce(*, user_id: int, online: bool, contacts: Iterable[int]) -> None:
    # The state may have flipped back while the contacts were read (a reload:
    # the last tab closed here, a new one opened on another process); the
    # later transition is the one that tells the truth, so this one stays quiet.
    groups = [user_group(contact) for contact in sorted(contacts)]
    if not groups or await current_store().is_announced(user_id=user_id) != online:
        return
    send_ephemeral_rollback_unsafe(
        groups,
        {"type": "presence", "user_id": user_id, "online": online},
    )


async def _best_effort(work: Coroutine[Any, Any, None]) -> None:
    try:
        await work
    except Exception as error:
        # A Redis or database hiccup must not close the socket or stop its heartbeat.
        if not faults.report("presence", error):
            logger.exception("presence update failed")


# --- the consumer's hooks ----------------------------------------------------------
@dataclass(eq=False, slots=True)  # one per open socket: no __dict__
class _Connection:
    user_id: int
    socket: str  # the consumer's channel name: unique across processes
    contacts: frozenset[int] | None = None  # read at the online transition, reused after
    pending: asyncio.Future[None] | None = None
    closed: bool = False


# This process's open sockets: the sweeper runs while there is at least one.
_live: set[_Connection] = set()
_sweeper: asyncio.Task[None] | None = None


async def _run(connection: _Connection, work: Coroutine[Any, Any, None]) -> None:
    # Shielded: disconnect cancels the heartbeat task, and a refresh cut off
    # mid-command could still reach Redis after the leave and re-add the socket.
    pending = connection.pending = asyncio.ensure_future(_best_effort(work))
    await asyncio.shield(pending)
    if connection.pending is pending:
        connection.pending = None  # done: an open socket keeps no finished task


async def _touch_batch(entries: list[tuple[int, str]]) -> list[bool]:
    return await current_store().touch_many(entries=entries, ttl=_ttl_seconds())


# The connects of one loop iteration (a burst) share one script call.
_connect_touches: LoopBatcher[tuple[int, str], bool] = LoopBatcher(_touch_batch)


async def _touch(connection: _Connection) -> None:
    if not await _connect_touches.submit((connection.user_id, connection.socket)):
        return
    await _announce_online(connection)


async def _touch_many(connections: list[_Connection]) -> None:
    store = current_store()
    entries = [(connection.user_id, connection.socket) for connection in connections]
    announce = await store.touch_many(entries=entries, ttl=_ttl_seconds())
    for connection, online in zip(connections, announce, strict=True):
        if online:
            await _announce_online(connection)


async def _announce_online(connection: _Connection) -> None:
    if connection.contacts is None:
        connection.contacts = frozenset(await run_db(contact_ids)(user_id=connection.user_id))
    await _announce(user_id=connection.user_id, online=True, contacts=connection.contacts)


async def _leave(connection: _Connection) -> None:
    if not await current_store().leave(user_id=connection.user_id, socket=connection.socket):
        return
    # Fresh contacts (someone may have written to the user meanwhile), plus
    # anyone who heard "online" from this socket and has since left a shared room.
    contacts = await run_db(contact_ids)(user_id=connection.user_id)
    await _announce(
        user_id=connection.user_id,
        online=False,
        contacts=contacts | (connection.contacts or frozenset()),
    )


def connect_contacts(user_id: int, rows: list[int]) -> frozenset[int]:
    """Read in the connect's one statement (registry.connect_reads): none at the transition."""
    return frozenset(rows) - {user_id}


async def connection_opened(consumer) -> None:
    contacts = getattr(consumer, "connect_reads", {}).get(CONTACTS_READ)
    connection = _Connection(
        user_id=consumer.user_id, socket=consumer.channel_name, contacts=contacts
    )
    consumer.presence_connection = connection
    _live.add(connection)
    _start_sweeper()
    await _run(connection, _touch(connection))


async def connections_alive(consumers: Iterable[Any]) -> None:
    """A heartbeat's batch of sockets: their entries are pushed forward in one round trip."""
    connections = [
        connection
        for connection in (getattr(consumer, "presence_connection", None) for consumer in consumers)
        if connection is not None and not connection.closed
    ]
    if not connections:
        return
    # Each connection's close waits for this refresh before its leave (see _run).
    pending = asyncio.ensure_future(_best_effort(_touch_many(connections)))
    for connection in connections:
        connection.pending = pending
    await asyncio.shield(pending)


async def connection_closed(consumer) -> None:
    connection: _Connection | None = getattr(consumer, "presence_connection", None)
    if connection is None or connection.closed:
        return
    connection.closed = True
    _live.discard(connection)
    if connection.pending is not None:
        await asyncio.wait([connection.pending])  # an in-flight refresh lands before the leave
    if getattr(consumer, "close_code_sent", None) not in RECONNECT_CLOSE_CODES:
        await _best_effort(_leave(connection))
    if not _live:
        _stop_sweeper()


# --- sockets that never closed (their process died) -------------------------------
async def sweep_expired() -> list[int]:
    """Announce offline every user whose sockets all expired; returns their ids."""
    store = current_store()
    gone: list[int] = []
    while True:
        due = await store.due(limit=SWEEP_BATCH)
        for user_id in due:
            # The leave with no socket only prunes: one process wins each user.
            if await store.leave(user_id=user_id, socket=""):
                gone.append(user_id)
                contacts = await run_db(contact_ids)(user_id=user_id)
                await _announce(user_id=user_id, online=False, contacts=contacts)
        if len(due) < SWEEP_BATCH:
            return gone


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(float(settings.QW_HEARTBEAT_SECONDS))
        # Shielded: a sweep that won a user must announce it even if the
        # last local socket closes meanwhile and stops this task.
        await asyncio.shield(asyncio.ensure_future(_best_effort(sweep_expired())))


def _start_sweeper() -> None:
    global _sweeper
    loop = asyncio.get_running_loop()
    if _sweeper is None or _sweeper.done() or _sweeper.get_loop() is not loop:
        _sweeper = loop.create_task(_sweep_forever())


def _stop_sweeper() -> None:
    global _sweeper
    if _sweeper is not None:
        _sweeper.cancel()
        _sweeper = None


# --- reads ------------------------------------------------------------------
def online_user_ids(*, user_ids: Sequence[int]) -> set[int]:
    """Which of these users have a live socket now (expired sockets never count)."""
    return current_store().live_among(list(user_ids))
