"""The core's extension points: the apps plug in here, the core never names an app.

Each app fills its entries from its `AppConfig.ready()` (as Django admin's
`autodiscover()` does), so `realtime/` imports no app and import-linter
holds that line (`make lint`). Everything is registered once at start-up and
only read afterwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.urls import include, path

FrameHandler = Callable[[Any, dict[str, Any]], Awaitable[None]]
ConnectionHook = Callable[[Any], Awaitable[None]]
# The sockets of one heartbeat tick, so an app can refresh them in one round trip.
BatchHook = Callable[[list[Any]], Awaitable[None]]


@dataclass(frozen=True)
class SubscriptionKind:
    """`subscribe` to `<kind>:<id>` (SPEC §5 Groups)."""

    group: Callable[[int], str]  # the channel-layer group of one object
    # (user_id, is_staff, object_id), on a DB thread; False for a missing object
    # too, so a client cannot enumerate ids.
    can_subscribe: Callable[[int, bool, int], bool]


# Frame `type` → handler(consumer, frame).
frame_handlers: dict[str, FrameHandler] = {}
subscription_kinds: dict[str, SubscriptionKind] = {}
durable_event_types: set[str] = set()
# Awaited in registration order with the consumer; a hook keeps its own state
# on the consumer and must not raise (a failing hook would close the socket).
# A plain list, not a Django Signal: `Signal.asend` measured 144 µs per call
# against 1.0 µs here (0.5 µs for a direct await), and these run on every
# connect, heartbeat and close.
socket_opened: list[ConnectionHook] = []
socket_alive: list[BatchHook] = []  # once per heartbeat tick, with the sockets that beat
socket_closed: list[ConnectionHook] = []


@dataclass(frozen=True)
class ConnectRead:
    """A read an app needs for every new socket, folded into the connect's one SQL statement."""

    # One user's rows as a one-column queryset (e.g. `values_list("id", flat=True)`):
    # compiled once per process, not per connect (realtime.auth.socket).
    rows: Callable[[int], Any]
    convert: Callable[[int, list[Any]], Any]  # (user_id, the column's values) → the result


# name → read; the results are in `consumer.connect_reads[name]` before the
# `socket_opened` hooks run.
connect_reads: dict[str, ConnectRead] = {}
# Stored events on their way out of the database (replay, gap repair,
# GET /api/events/), in registration order: each takes and returns
# [(seq, type, payload)], one seq for one seq (the sequence stays gap-free).
# How an app keeps what it has since withdrawn (a deleted message) from
# coming back, without the core knowing what the payloads mean.
EventRows = list[tuple[int, str, dict[str, Any]]]
event_rewriters: list[Callable[[EventRows], EventRows]] = []
# Daily clean-ups `manage.py prune_events` runs after pruning the inbox: each
# deletes what its app no longer needs and returns a line for the log.
pruners: list[Callable[[], str]] = []
# The apps' URL modules, included by the root urlconf.
url_patterns: list[Any] = []
# Started once by each server process (quantumworks/serve.py), after Django is
# set up: work an app runs beside the sockets (e.g. the embedded default's
# offline-delivery worker). Each decides from settings whether to run.
process_services: list[Callable[[], None]] = []


def register_frame_handlers(handlers: Mapping[str, FrameHandler]) -> None:
    taken = frame_handlers.keys() & handlers.keys()
    assert not taken, f"frame types registered twice: {sorted(taken)}"
    frame_handlers.update(handlers)


def register_subscription_kind(
    kind: str, *, group: Callable[[int], str], can_subscribe: Callable[[int, bool, int], bool]
) -> None:
    assert kind not in subscription_kinds, kind
    subscription_kinds[kind] = SubscriptionKind(group=group, can_subscribe=can_subscribe)


def register_durable_event_types(*event_types: str) -> None:
    durable_event_types.update(event_types)


def register_connection_hooks(
    *,
    opened: ConnectionHook | None = None,
    alive: BatchHook | None = None,
    closed: ConnectionHook | None = None,
) -> None:
    if opened is not None:
        socket_opened.append(opened)
    if alive is not None:
        socket_alive.append(alive)
    if closed is not None:
        socket_closed.append(closed)


def register_connect_read(
    name: str, *, rows: Callable[[int], Any], convert: Callable[[int, list[Any]], Any]
) -> None:
    assert name not in connect_reads, name
    connect_reads[name] = ConnectRead(rows=rows, convert=convert)


async def run_hooks(hooks: list[ConnectionHook], consumer: Any) -> None:
    for hook in hooks:
        await hook(consumer)


def register_event_rewriter(rewrite: Callable[[EventRows], EventRows]) -> None:
    event_rewriters.append(rewrite)


def rewrite_events(rows: EventRows) -> EventRows:
    for rewrite in event_rewriters:
        if rows:
            rows = rewrite(rows)
    return rows


def register_pruner(prune: Callable[[], str]) -> None:
    pruners.append(prune)


def register_process_service(start: Callable[[], None]) -> None:
    process_services.append(start)


def start_process_services() -> None:
    for start in process_services:
        start()


def register_urls(prefix: str, module: str) -> None:
    url_patterns.append(path(prefix, include(module)))
