"""The one WebSocket consumer (SPEC §5).

It parses frames, hands each to its handler, and relays layer messages to the
socket. Durable events carry a per-user seq; the consumer keeps the last seq
it sent so that replay, live delivery and gap repair never send a gap, a
duplicate or a reordering. Layer messages are dispatched one at a time, so a
replay running inside a handler holds live events back until it has finished.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from realtime import faults, heartbeats, metrics, registry
from realtime.auth.socket import USER_INACTIVE, SocketAuth, socket_session
from realtime.db import run_db
from realtime.domain_errors import DomainError
from realtime.frames import dumps, event_frame_text
from realtime.incidents import new_incident_id
from realtime.mailbox import Mailbox
from realtime.outbox import BROADCAST_GROUP, user_group
from realtime.protocol import FrameError, frame_error, query_param
from realtime.publisher import publisher
from realtime.selectors import events_after, inbox_last_seq, user_is_active
from realtime.session.handlers import authenticated_frame
from realtime.transport import (
    FAST_SEND_EXTENSION,
    HEARTBEAT_SEND_EXTENSION,
    MAILBOX_EXTENSION,
    SEND_BUFFER_EXTENSION,
    SLOW_CONSUMER_CODE,
    FastSend,
    SendBuffer,
)

logger = logging.getLogger("quantumworks.ws")
GROUP_REFRESH_SECONDS = 3600


# The open sockets of this process, for the SIGTERM close (4012).
LIVE_CONSUMERS: set[RealtimeConsumer] = set()


async def close_all_for_restart() -> None:
    await asyncio.gather(
        *(consumer.close_with(4012, "service_restart") for consumer in list(LIVE_CONSUMERS)),
        return_exceptions=True,
    )


async def _pump(receive, mailbox: Mailbox) -> None:
    """Moves a server's ASGI events into the mailbox (servers that offer none: daphne, tests)."""
    while True:
        message = await receive()
        mailbox.put_nowait(message)
        if message["type"] == "websocket.disconnect":
            return


class RealtimeConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope, receive, send) -> None:
        """channels' `__call__`, with one inbox and no task of its own per socket.

        channels runs `await_many_dispatch([receive, channel_receive])`: two
        tasks per socket waiting on two queues, both tasks recreated after
        every message (W1 profile: 17 % of the loop in this plumbing). Here
        the layer puts the socket's queued group messages into the same
        `Mailbox` the server's `receive` reads (realtime.mailbox), and this
        task awaits that alone. Under uvicorn the mailbox is the protocol's own
        queue (servers.ws_uvicorn); elsewhere one task moves the server's
        events into it. A layer without `open_channel` gets channels' loop.
        """
        layer = get_channel_layer(self.channel_layer_alias)
        open_channel = getattr(layer, "open_channel", None)
        if open_channel is None:
            await super().__call__(scope, receive, send)
            return
        self.scope = scope
        self.channel_layer = layer
        self.base_send = send
        mailbox = scope.get("extensions", {}).get(MAILBOX_EXTENSION)
        pump = None
        if mailbox is None:
            mailbox = Mailbox()
            pump = asyncio.ensure_future(_pump(receive, mailbox))
            receive = mailbox.get
        self.channel_name = open_channel(mailbox)
        try:
            while True:
                message = await receive()
                if not message["type"].startswith("websocket."):
                    # A queued layer message: the fast lane waits until it is
                    # dispatched (realtime.layers), as after the layer's receive.
                    self.layer_busy = True
                await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            layer.close_channel(self.channel_name)
            if pump is not None:
                pump.cancel()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """channels' dispatch, minus its `aclose_old_connections()` per message.

        That call hops to the sync thread on every frame and layer message;
        this consumer never touches the ORM on the event loop (DB work runs
        on realtime.db's threads), so there is nothing for it to close.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        if message["type"].startswith("websocket."):
            await handler(message)  # receive() answers its own faults
            return
        try:
            await handler(message)
        except Exception as error:
            # A layer message that fails must not end the consumer: its
            # disconnect cleanup would never run. The heartbeat's catch-up
            # resends what a failed delivery missed.
            if faults.report("layer message", error):
                return
            logger.error(
                "layer message %s for user %s failed (incident %s)",
                message["type"],
                self.user_id,
                new_incident_id(),
                exc_info=error,
            )
        finally:
            self.layer_busy = False  # the fast lane may pass again (realtime.layers)

    async def send(self, text_data=None, bytes_data=None, close=False) -> None:
        # After a close (4012 on shutdown, 4003, …) a late ack or event has
        # nowhere to go; sending it would only raise in the protocol server.
        if self.closing:
            return
        await super().send(text_data=text_data, bytes_data=bytes_data, close=close)
        buffer = self.send_buffer
        # `paused` is set by the transport past half the budget: the common
        # case costs one attribute read, no sum and no syscall.
        if buffer is not None and buffer.paused and buffer.pending() > self.send_budget:
            await self.close_slow_consumer(buffer.pending())

    async def wait_for_reader(self) -> bool:
        """Events read from the database stop at half the budget until the client has read them.

        A replay or gap repair reads far faster than a slow network takes it;
        waiting here keeps what the socket holds under the budget, so a slow
        but live client catches up at its own pace. False once the socket is
        gone or closed as a slow consumer: the caller stops sending.
        """
        buffer = self.send_buffer
        if buffer is None:
            return not self.closing
        if buffer.paused and not await buffer.wait_drained(settings.QW_SOCKET_SEND_TIMEOUT_SECONDS):
            if buffer.open:
                await self.close_slow_consumer(buffer.pending())
            return False
        return buffer.open and not self.closing

    async def close_slow_consumer(self, pending: int) -> None:
        if self.closing:
            return
        logger.warning(
            "ws refused: slow consumer user=%s holding %d bytes (close 4008 slow_consumer)",
            self.user_id,
            pending,
        )
        await self.close_with(SLOW_CONSUMER_CODE, "slow_consumer")

    async def connect(self) -> None:
        publisher.bind_loop(asyncio.get_running_loop())
        # The fan-out fast lane (realtime.layers): set up before the group
        # joins, so the layer marks every message it hands over as in flight;
        # open only once connect (and its replay) is done.
        self.layer_busy = False
        self.fast_ready = False
        extensions = self.scope.get("extensions", {})
        self.fast_send: FastSend | None = extensions.get(FAST_SEND_EXTENSION)
        self.heartbeat_send: FastSend | None = extensions.get(HEARTBEAT_SEND_EXTENSION)
        if self.fast_send is not None:
            join = getattr(self.channel_layer, "fast_lane_join", None)
            if join is not None:
                join(self.channel_name, self)
        self.user_id: int | None = None
        self.closing = False
        self.last_sent_seq = 0
        # Held while sending durable events: the heartbeat's catch-up runs
        # beside the dispatch loop and must not interleave with it.
        self.delivery_lock = asyncio.Lock()
        self.close_code_sent: int | None = None
        self.subscriptions: set[str] = set()
        self.background: set[asyncio.Task] = set()
        self.expiry_handle: asyncio.TimerHandle | None = None
        self.connected_at = time.monotonic()
        # Present under `python -m servers`; in-process test sockets have none.
        self.send_buffer: SendBuffer | None = extensions.get(SEND_BUFFER_EXTENSION)
        self.send_budget = settings.QW_SOCKET_SEND_BUDGET_BYTES
        auth: SocketAuth = self.scope["auth"]
        await self.accept(self.scope.get("accept_subprotocol"))
        if not auth.ok:
            logger.info("ws refused code=%s", auth.close_code)
            await self.close_with(auth.close_code, auth.close_reason)
            return
        # Join before reading last_seq: an event committed after the read is
        # then certain to arrive live.
        groups = [user_group(auth.user_id), BROADCAST_GROUP]
        try:
            for group in groups:
                await self.channel_layer.group_add(group, self.channel_name)
            session = await run_db(socket_session)(auth.user_id)
        except Exception as error:
            if not faults.report("connect", error):
                raise
            await self.close_unavailable(groups)
            return
        if session is None:
            for group in groups:
                await self.channel_layer.group_discard(group, self.channel_name)
            logger.info("ws refused code=%s", USER_INACTIVE.close_code)
            await self.close_with(USER_INACTIVE.close_code, USER_INACTIVE.close_reason)
            return
        self.user_id = auth.user_id
        self.is_staff = session.is_staff
        metrics.OPEN_CONNECTIONS.inc()
        LIVE_CONSUMERS.add(self)
        self.connect_reads = session.reads
        current_seq = self.last_sent_seq = session.last_seq
        await self.send_frame(authenticated_frame(user_id=self.user_id, last_seq=current_seq))
        self.schedule_expiry(auth.expires_at)
        self.groups_joined_at = time.monotonic()
        heartbeats.wheel().add(self)
        await registry.run_hooks(registry.socket_opened, self)
        client = self.scope.get("client") or ("?", 0)
        # Behind nginx this is the real client (servers/proxy_daphne.py), not the proxy.
        logger.info("ws connect user=%s client=%s", self.user_id, client[0])
        last_seq = self.query_last_seq()
        if last_seq is not None:
            try:
                await self.replay(last_seq)
            except Exception as error:  # noqa: BLE001 (server_fault logs the traceback)
                await self.server_fault("replay at connect", error)
        self.fast_ready = True

    def query_last_seq(self) -> int | None:
        value = query_param(self.scope, "last_seq")
        # ASCII digits only (int() also takes "١٢", "1_0" and 5,000 digits),
        # within a bigint; anything else is ignored like a missing value.
        if value is None or not value.isascii() or not value.isdigit() or len(value) > 18:
            return None
        return int(value)

    async def disconnect(self, code: int) -> None:
        self.closing = True
        for task in list(getattr(self, "background", ())):
            task.cancel()
        if getattr(self, "expiry_handle", None) is not None:
            self.expiry_handle.cancel()
        if getattr(self, "fast_send", None) is not None:
            leave = getattr(self.channel_layer, "fast_lane_leave", None)
            if leave is not None:
                leave(self.channel_name)
        if getattr(self, "user_id", None) is None:
            return
        heartbeats.wheel().discard(self)
        metrics.OPEN_CONNECTIONS.dec()
        LIVE_CONSUMERS.discard(self)
        await self.leave_groups([user_group(self.user_id), BROADCAST_GROUP, *self.subscriptions])
        await registry.run_hooks(registry.socket_closed, self)
        logger.info(
            "ws disconnect user=%s code=%s seconds=%.1f",
            self.user_id,
            self.close_code_sent or code,
            time.monotonic() - self.connected_at,
        )

    async def leave_groups(self, groups: list[str]) -> None:
        # Each on its own: the layer forgets a membership before its Redis call,
        # so one failing during an outage must not keep the others.
        for group in groups:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception as error:
                if not faults.report("leave groups", error):
                    raise

    async def close_unavailable(self, groups: list[str]) -> None:
        """Redis or PostgreSQL is unreachable (realtime.faults has logged it): the
        client retries with backoff and resumes from its last_seq."""
        await self.leave_groups(groups)
        logger.info("ws refused code=%s", faults.UNAVAILABLE_CLOSE_CODE)
        await self.close_with(faults.UNAVAILABLE_CLOSE_CODE, faults.UNAVAILABLE_CLOSE_REASON)

    async def close_with(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.close_code_sent = code
        await self.close(code=code, reason=reason)
        self.closing = True

    # --- client → server --------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user_id is None:
            return
        frame_type = "invalid"
        try:
            if text_data is None:
                raise FrameError("invalid_json", "frames must be JSON text")
            if len(text_data) > settings.QW_MAX_FRAME_BYTES:
                raise FrameError("too_large", "frame exceeds 64 KiB")
            try:
                frame = orjson.loads(text_data)
            except orjson.JSONDecodeError:
                raise FrameError("invalid_json", "frame is not valid JSON") from None
            if not isinstance(frame, dict):
                raise FrameError("invalid_message", "frame must be a JSON object")
            frame_type = frame.get("type")
            if not isinstance(frame_type, str):
                frame_type = "invalid"
                raise FrameError("invalid_message", "'type' must be a string")
            handler = registry.frame_handlers.get(frame_type)
            if handler is None:
                frame_type = "unknown"
                raise FrameError("unknown_type", "unknown frame type")
            metrics.FRAMES_IN.labels(frame_type).inc()
            try:
                await handler(self, frame)
            except DomainError as error:
                raise frame_error(error) from None
        except FrameError as error:
            if error.code == "rate_limited":
                metrics.RATE_LIMITED.labels(frame_type).inc()
            await self.send_frame(error.as_frame())
        except Exception as error:  # noqa: BLE001 (server_fault logs the traceback)
            await self.server_fault(f"frame {frame_type}", error)

    async def server_fault(self, what: str, error: Exception) -> None:
        """A handler failed: a traceback in the log, and an incident id the client can quote.

        Unless the user is gone: a frame racing its user's deletion is a 4003
        (SPEC §5), not a fault of ours. An outage is the fault log's (no traceback).
        """
        if faults.report(what, error):
            await self.send_frame(
                FrameError("server_error", "the server could not process this frame").as_frame()
            )
            return
        if not await run_db(user_is_active)(self.user_id):
            logger.info("ws %s: user %s no longer active (close 4003)", what, self.user_id)
            await self.close_with(4003, "user_inactive")
            return
        incident = new_incident_id()
        logger.error(
            "%s from user %s failed (incident %s)", what, self.user_id, incident, exc_info=error
        )
        await self.send_frame(
            FrameError(
                "server_error", "the server could not process this frame", incident_id=incident
            ).as_frame()
        )

    # --- server → client ------------------------------------------------------
    async def send_frame(self, frame: dict[str, Any]) -> None:
        metrics.FRAMES_OUT.labels(frame["type"]).inc()
        await self.send(text_data=dumps(frame))

    async def send_event_text(self, seq: int, text: str) -> bool:
        """Send one durable event read from the database; False when the socket can take no more."""
        await self.send(text_data=text)
        self.last_sent_seq = seq
        return await self.wait_for_reader()

    async def replay(self, after_seq: int) -> None:
        """Send every event with seq > after_seq in bounded batches, then `resumed`."""
        async with self.delivery_lock:
            await self._replay(after_seq)

    async def _replay(self, after_seq: int) -> None:
        batch = settings.QW_REPLAY_BATCH
        current = await run_db(inbox_last_seq)(self.user_id)
        cursor = after_seq
        count = 0
        first = True
        while True:
            rows = await run_db(events_after)(self.user_id, cursor, limit=batch)
            if first:
                first = False
                missing = (rows and rows[0][0] != after_seq + 1) or (
                    not rows and current > after_seq
                )
                if missing or after_seq > current:
                    # Older than retention (or from another database): refetch over REST.
                    self.last_sent_seq = max(self.last_sent_seq, current)
                    await self.send_frame({"type": "resync_required"})
                    return
            for seq, event_type, payload in rows:
                await self.send(text_data=event_frame_text(seq, event_type, payload))
                count += 1
                cursor = seq
                if not await self.wait_for_reader():
                    return
            metrics.FRAMES_OUT.labels("replay").inc(len(rows))
            if len(rows) < batch:
                break
        self.last_sent_seq = cursor
        await self.send_frame({"type": "resumed", "last_seq": cursor, "count": count})

    async def repair_gap(self, upto_seq: int) -> None:
        """A live event skipped seqs (a dropped layer message): read the missing ones."""
        while self.last_sent_seq < upto_seq:
            rows = await run_db(events_after)(
                self.user_id,
                self.last_sent_seq,
                limit=settings.QW_REPLAY_BATCH,
                upto_seq=upto_seq,
            )
            if not rows:
                logger.error(
                    "gap repair for user %s found nothing after seq %s",
                    self.user_id,
                    self.last_sent_seq,
                )
                return
            for seq, event_type, payload in rows:
                if not await self.send_event_text(seq, event_frame_text(seq, event_type, payload)):
                    return

    async def catch_up(self, current: int) -> None:
        """Send events whose doorbell never rang (the layer is at-most-once).

        Gap repair covers a lost event followed by another; this covers a
        lost *last* event, within one heartbeat interval (`current` is the
        inbox's seq as the heartbeat read it).
        """
        async with self.delivery_lock:
            await self.repair_gap(current)

    # --- layer messages ---------------------------------------------------------
    async def inbox_events(self, message: dict[str, Any]) -> None:
        async with self.delivery_lock:
            await self._deliver(message)

    async def _deliver(self, message: dict[str, Any]) -> None:
        if self.closing:
            return  # nothing goes out any more: no gap to repair either
        for seq, event_type, text in message["events"]:
            if seq <= self.last_sent_seq:
                continue  # already sent by a replay or a repair
            if seq > self.last_sent_seq + 1:
                await self.repair_gap(seq - 1)
            # Live events do not wait for a slow reader (live events behind
            # them would pile up in the layer meanwhile): past the budget the
            # socket is closed and the client resumes, paced, from last_seq.
            await self.send(text_data=text)
            if self.closing:
                return
            self.last_sent_seq = seq
            metrics.FRAMES_OUT.labels(event_type).inc()
        if "committed_at" in message:
            metrics.DELIVERY_LATENCY.observe(max(time.time() - message["committed_at"], 0))

    def write_now(self, text: str) -> bool:
        """A frame written without awaiting (heartbeats); False: `send` it (checks the budget)."""
        buffer = self.send_buffer
        write = self.heartbeat_send or self.fast_send
        if write is None or self.closing or (buffer is not None and buffer.paused):
            return False
        return write(text)

    def fast_deliver(self, message: dict[str, Any]) -> bool:
        """The layer's fast lane: send a group message now, from the pub/sub reader.

        Only what needs no await: an ephemeral frame, or durable events that
        follow last_sent_seq exactly while no replay, repair or catch-up runs.
        False sends it down the queued path (a gap to repair, a socket past
        half its send budget, anything else), which keeps SPEC §4 as it was.
        """
        if not self.fast_ready or self.closing:
            return False
        buffer = self.send_buffer
        if buffer is not None and buffer.paused:
            return False
        kind = message.get("type")
        write = self.fast_send
        if kind == "ephemeral.frame":
            return message.get("exclude_user") == self.user_id or write(message["text"])
        if kind != "inbox.events" or self.delivery_lock.locked():
            return False
        events = [event for event in message["events"] if event[0] > self.last_sent_seq]
        if any(event[0] != self.last_sent_seq + n for n, event in enumerate(events, 1)):
            return False
        for seq, event_type, text in events:
            if not write(text):
                return False  # closing: the queued path drops what is left
            self.last_sent_seq = seq
            metrics.FRAMES_OUT.labels(event_type).inc()
        if "committed_at" in message:
            metrics.DELIVERY_LATENCY.observe(max(time.time() - message["committed_at"], 0))
        return True

    async def ephemeral_frame(self, message: dict[str, Any]) -> None:
        if message.get("exclude_user") == self.user_id:
            return
        await self.send(text_data=message["text"])

    async def subscription_revoke(self, message: dict[str, Any]) -> None:
        """Access to a subscribed group ended (e.g. removed from a room)."""
        group = message["group"]
        if group in self.subscriptions:
            self.subscriptions.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.send_frame({"type": "unsubscribed", "channel": message["channel"]})

    async def session_close(self, message: dict[str, Any]) -> None:
        """Another part of the system ended this user's sessions (deactivation, logout)."""
        await self.close_with(message["code"], message["reason"])

    # --- timers -----------------------------------------------------------------
    def schedule_expiry(self, expires_at: float | None) -> None:
        if self.expiry_handle is not None:
            self.expiry_handle.cancel()
        if expires_at is None:
            return
        delay = max(expires_at - time.time(), 0)
        loop = asyncio.get_running_loop()
        self.expiry_handle = loop.call_later(
            delay, lambda: self.in_background(self.close_with(4002, "token_expired"))
        )

    def in_background(self, work) -> None:
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background_done)

    def background_done(self, task: asyncio.Task) -> None:
        self.background.discard(task)
        error = None if task.cancelled() else task.exception()
        if error is not None and not faults.report("background", error):
            logger.error("background work for user %s failed", self.user_id, exc_info=error)

    def after_heartbeat(self, current_seq: int) -> None:
        """The process-wide heartbeat (realtime.heartbeats) read this user's inbox seq."""
        if current_seq > self.last_sent_seq:
            self.in_background(self.catch_up(current_seq))
        if time.monotonic() - self.groups_joined_at > GROUP_REFRESH_SECONDS:
            self.groups_joined_at = time.monotonic()
            self.in_background(self.refresh_groups())

    async def refresh_groups(self) -> None:
        # channels-redis forgets a membership after group_expiry (1 day):
        # a long-lived socket would silently stop receiving.
        for group in [user_group(self.user_id), BROADCAST_GROUP, *self.subscriptions]:
            await self.channel_layer.group_add(group, self.channel_name)
