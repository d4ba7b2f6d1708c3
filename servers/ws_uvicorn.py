"""Our uvicorn WebSocket protocol: what SPEC §5 needs from the server itself.

uvicorn's websockets-sansio protocol (the default of `python -m servers`)
blocks the application's `send` while the transport's buffer is over its
high-water mark, with no bound in time, raises into the application when it
sends on a closing socket, closes an oversized frame with websockets' own
sentence, and logs a traceback for a text frame that is not UTF-8. This
subclass, installed by servers.uvicorn, does what
servers.ws_daphne does for daphne:

- exposes each socket's outgoing buffer to the consumer as the ASGI
  extension `qw.send_buffer` (`TransportSendBuffer`, asyncio flow control),
  so the consumer bounds what it queues for a client that stopped reading
  (4008 `slow_consumer`) and paces replays; while the buffer is over its
  mark the socket is not read;
- drops sends on a socket that is already closing: the application hears
  `websocket.disconnect` next, instead of an exception in the middle of a
  replay that skips its cleanup;
- closes an oversized frame with 1009 `too_large` and one log line;
- closes a text frame that is not UTF-8 with 1007 and one log line;
- sends the answer websockets wrote to a handshake it refused itself (414 for
  a request line over 8 KiB, 431 for a header line over it or more than 128
  headers) and closes. uvicorn writes websockets' output only when a request
  parsed; a refused one produced no event, so its answer stayed unsent and
  the connection hung open until the client gave up (issue 20).
- keeps the socket alive from the heartbeat wheel instead of uvicorn's
  per-socket ping timers (`ws_ping_interval` is off, servers.uvicorn): the
  heartbeat frame and a WebSocket ping leave in one write (the ASGI
  extension `qw.heartbeat_send`, both frames built once per tick), and a
  socket whose ping got no pong by its next heartbeat is failed with 1011
  (a silent peer is closed within two heartbeat intervals; uvicorn's 20 s +
  30 s was 50 s). No timer per socket, no frame built per socket;
- offers the consumer a synchronous write of a text frame (the ASGI
  extension `qw.fast_send`, realtime.layers' fan-out fast lane): the frame
  of a text is built once however many sockets it goes to (server frames
  are unmasked, so the bytes are the same for every socket that negotiated
  no extension; one with permessage-deflate compresses its own copy).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import (
    HeaderLineTooLong,
    PayloadTooBig,
    RequestLineTooLong,
    TooManyHeaders,
)
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from realtime.mailbox import Mailbox
from realtime.transport import (
    FAST_SEND_EXTENSION,
    HEARTBEAT_SEND_EXTENSION,
    MAILBOX_EXTENSION,
    SEND_BUFFER_EXTENSION,
    SLOW_CONSUMER_CLOSE_SECONDS,
    SLOW_CONSUMER_CODE,
    TOO_LARGE_REASON,
    DrainableBuffer,
    log_oversized_frame,
    logger,
)
from servers.request_head import log_refused

INVALID_UTF8_REASON = "invalid_utf8"
HANDSHAKE_REFUSALS = {RequestLineTooLong: 414, HeaderLineTooLong: 431, TooManyHeaders: 431}


# The keepalive ping's payload: one for every socket (a pong is matched by socket).
KEEPALIVE_PAYLOAD = b"qw-hb"
KEEPALIVE_PING = Frame(Opcode.PING, KEEPALIVE_PAYLOAD).serialize(mask=False)


class _EncodedText:
    """The UTF-8 payload and the unmasked frame of the text last written (a fan-out's one text)."""

    text: str | None = None
    payload = b""
    frame = b""
    frame_and_ping = b""

    def of(self, text: str) -> _EncodedText:
        if text is not self.text:
            self.text = text
            self.payload = text.encode()
            self.frame = Frame(Opcode.TEXT, self.payload).serialize(mask=False)
            self.frame_and_ping = b""
        return self

    def with_ping(self) -> bytes:
        if not self.frame_and_ping:
            self.frame_and_ping = self.frame + KEEPALIVE_PING
        return self.frame_and_ping


_encoded = _EncodedText()


class TransportSendBuffer(DrainableBuffer):
    """The bytes one socket holds for its client, from asyncio's flow control.

    The transport calls the protocol's `pause_writing` when its buffer passes
    `high_water` and `resume_writing` once it is back under a quarter of it:
    the consumer reads a flag per frame, and asks for the size only when
    paused.
    """

    def __init__(self, protocol: QWWebSocketProtocol, high_water: int) -> None:
        super().__init__()
        self.protocol = protocol
        self.transport = protocol.transport
        self.transport.set_write_buffer_limits(high=high_water)

    @property
    def open(self) -> bool:
        protocol = self.protocol
        return not (self.closed or protocol.close_sent or protocol.disconnected)

    def pending(self) -> int:
        return self.transport.get_write_buffer_size()


class _AlwaysWritable:
    """uvicorn's `writable` Event, which our flow control never clears (see pause_writing)."""

    __slots__ = ()

    def set(self) -> None:
        pass

    def clear(self) -> None:
        pass

    def is_set(self) -> bool:
        return True

    async def wait(self) -> bool:
        return True


_ALWAYS_WRITABLE = _AlwaysWritable()


class QWServerProtocol(ServerProtocol):
    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        if code == CloseCode.MESSAGE_TOO_BIG:
            reason = TOO_LARGE_REASON  # SPEC §5; websockets would send its own sentence
        super().fail(code, reason)


class QWWebSocketProtocol(WebSocketsSansIOProtocol):
    send_buffer: TransportSendBuffer | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = QWServerProtocol(
            extensions=self.conn.available_extensions,
            max_size=self.config.ws_max_size,
            logger=self.conn.logger,
        )
        # Per socket, uvicorn's asyncio.Queue and Event hold five deques
        # (≈ 4 KiB, W1 tracemalloc); the mailbox none while the socket is idle.
        # The consumer reads it (our `receive`) and the channel layer puts the
        # socket's queued group messages into it (MAILBOX_EXTENSION).
        self.queue = Mailbox()  # type: ignore[assignment]
        self.writable = _ALWAYS_WRITABLE  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        from django.conf import settings

        super().connection_made(transport)
        self.send_buffer = TransportSendBuffer(self, settings.QW_SOCKET_SEND_BUDGET_BYTES // 2)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.send_buffer is not None:
            self.send_buffer.connection_closed()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.handshake_initiated and self.conn.handshake_exc is not None:
            self.refuse_handshake(self.conn.handshake_exc)

    def refuse_handshake(self, error: Exception) -> None:
        status = HANDSHAKE_REFUSALS.get(type(error))
        log_refused(status, f"handshake: {error}", self.client[0] if self.client else "?")
        self.handshake_complete = self.close_sent = True
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # The application task is created but has not run yet: it sees this.
        if self.response.status_code == 101:
            self.scope["extensions"][SEND_BUFFER_EXTENSION] = self.send_buffer
            self.scope["extensions"][FAST_SEND_EXTENSION] = self.write_text_now
            self.scope["extensions"][MAILBOX_EXTENSION] = self.queue
            self.scope["extensions"][HEARTBEAT_SEND_EXTENSION] = self.write_heartbeat_now

    def start_keepalive(self) -> None:
        """No timer per socket: the heartbeat wheel pings (write_heartbeat_now)."""

    def _writable(self) -> bool:
        return not (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or self.conn.state is not State.OPEN
            or self.transport.is_closing()
        )

    def write_heartbeat_now(self, text: str) -> bool:
        """The heartbeat frame and a keepalive ping in one write; the last ping must be answered."""
        if self.pending_ping_payload is not None and self._writable():
            self.keepalive_timeout()  # uvicorn's: close 1011 "keepalive ping timeout"
            return True  # the application hears websocket.disconnect next
        if not self._writable():
            return False
        self.pending_ping_payload = KEEPALIVE_PAYLOAD
        self.ping_sent_at = self.loop.time()
        encoded = _encoded.of(text)
        if self.conn.extensions:  # permessage-deflate: this socket compresses its own copy
            self.conn.send_text(encoded.payload)
            self.conn.send_ping(KEEPALIVE_PAYLOAD)
            self.transport.write(b"".join(self.conn.data_to_send()))
        else:
            self.transport.write(encoded.with_ping())
        return True

    def write_text_now(self, text: str) -> bool:
        """Write one text frame without awaiting; False when the socket cannot take it."""
        conn = self.conn
        if not self._writable():
            return False
        encoded = _encoded.of(text)
        if conn.extensions:
            conn.send_text(encoded.payload)
            self.transport.write(b"".join(conn.data_to_send()))
        else:
            self.transport.write(encoded.frame)
        return True

    # Flow control. uvicorn would block every `send` on a full buffer; the
    # consumer's budget decides instead (it closes 4008 or waits for a drain),
    # so `writable` stays set.
    def pause_writing(self) -> None:
        self.send_buffer.paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.send_buffer.resumed()
        if not self.read_paused and not self.transport.is_closing():
            self.transport.resume_reading()

    async def receive(self):
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if not self.send_buffer.paused:
                self.transport.resume_reading()
        return message

    async def send(self, message) -> None:
        kind = message["type"]
        if (
            kind in ("websocket.send", "websocket.close")
            and self.handshake_complete
            and self.initial_response is None
            and (self.close_sent or self.disconnected or self.transport.is_closing())
        ):
            return  # the application hears websocket.disconnect next
        await super().send(message)
        if kind == "websocket.accept" and self.handshake_complete and self.request is not None:
            # The handshake's request and response (their header objects, ≈ 2.5 KiB)
            # are not read again once the answer has gone. websockets' parser
            # keeps the request alive in its generator for the socket's life:
            # its headers are emptied in place (the scope has its own copy).
            self.request.headers.clear()
            self.request = self.response = None  # type: ignore[assignment]
        if kind == "websocket.close" and self.close_timer is not None:
            self.close_timer.cancel()
            wait = (
                SLOW_CONSUMER_CLOSE_SECONDS
                if message.get("code") == SLOW_CONSUMER_CODE
                else self.close_timeout
            )
            self.close_timer = self.loop.call_later(wait, self.drop_connection)

    def drop_connection(self) -> None:
        """No close reply in time: a graceful close would keep unread data forever."""
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()

    def send_receive_event_to_app(self) -> None:
        # uvicorn's, with one log line instead of a traceback for bad UTF-8.
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past `websocket.close`: keep reading until the close reply
        if self.curr_msg_data_type == "text":
            try:
                self.queue.put_nowait({"type": "websocket.receive", "text": data.decode()})
            except UnicodeDecodeError as error:
                logger.warning(
                    "ws refused: text frame not valid UTF-8 (%s at byte %d) from %s (close 1007)",
                    error.reason,
                    error.start,
                    self.client[0] if self.client else "?",
                )
                self.conn.fail(CloseCode.INVALID_DATA, INVALID_UTF8_REASON)
                self.handle_parser_exception()
                return
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def handle_parser_exception(self) -> None:
        error = self.conn.parser_exc
        if isinstance(error, PayloadTooBig):
            log_oversized_frame(
                error.size, self.config.ws_max_size, self.client[0] if self.client else "?"
            )
        super().handle_parser_exception()
