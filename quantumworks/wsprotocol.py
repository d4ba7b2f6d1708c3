"""Our daphne WebSocket protocol: what SPEC §5 needs from the server itself.

daphne (through autobahn) writes every frame the application sends into an
unbounded user-space buffer, raises into the application when it sends on a
closing socket, drops the close reason, and closes an oversized frame with
autobahn's own sentence. This subclass, installed by `quantumworks.serve`:

- exposes each socket's outgoing buffer to the consumer as the ASGI
  extension `qw.send_buffer` (see `SendBuffer`), so the consumer can bound
  what it queues for a client that stopped reading (4008 `slow_consumer`);
- drops sends on a socket that is already closing: the application hears
  `websocket.disconnect` next, instead of an exception in the middle of a
  replay that skips its cleanup;
- sends the application's close reason, and `too_large` with 1009;
- logs one line per refused oversized frame.
"""

from __future__ import annotations

import asyncio
import logging

from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

from quantumworks.protocol import SEND_BUFFER_EXTENSION, SLOW_CONSUMER_CODE

logger = logging.getLogger("quantumworks.ws")

# autobahn waits 1 s for the client's reply to our close, then drops TCP. The
# 4008 close frame sits behind up to a budget of unread data: a client that
# reads again within this time still sees the code and resumes; one that
# never reads is dropped and its buffer freed.
SLOW_CONSUMER_CLOSE_SECONDS = 5


class SendBuffer:
    """The bytes one socket holds for its client, and a way to wait for them to leave.

    It is the TCP transport's streaming producer: twisted calls
    `pauseProducing` when the transport's buffer passes `high_water` and
    `resumeProducing` once all of it has reached the kernel, so the consumer
    learns about a full buffer from a flag, with no syscall or sum per frame.
    While paused the socket is not read either (as twisted's HTTP channel does,
    twisted#8868): a client that does not read cannot make us queue answers to
    frames it keeps sending.
    """

    def __init__(self, protocol: WebSocketProtocol, high_water: int) -> None:
        self.protocol = protocol
        self.transport = protocol.transport
        self.paused = False
        self.closed = False
        self._drained: asyncio.Future[None] | None = None
        self.transport.bufferSize = high_water
        if getattr(self.transport, "producer", None) is not None:
            # daphne leaves the upgraded HTTP channel registered; it has no
            # more work on this connection.
            self.transport.unregisterProducer()
        self.transport.registerProducer(self, True)

    @property
    def open(self) -> bool:
        return not self.closed and self.protocol.state == WebSocketProtocol.STATE_OPEN

    def pending(self) -> int:
        """Bytes written by the application that have not reached the kernel yet."""
        transport = self.transport
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

    async def wait_drained(self, seconds: float) -> bool:
        """Wait until the buffer has drained after a pause; False if it did not in time."""
        if self.paused and not self.closed:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), seconds)
            except TimeoutError:
                return False
        return self.open

    def _wake(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # twisted IPushProducer, called by the transport
    def pauseProducing(self) -> None:
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        self.transport.resumeProducing()
        self._wake()

    def stopProducing(self) -> None:
        self.connection_closed()

    def connection_closed(self) -> None:
        self.closed = True
        self.paused = False
        self._wake()


class QWWebSocketProtocol(WebSocketProtocol):
    send_buffer: SendBuffer | None = None

    def onConnect(self, request):
        from django.conf import settings

        # The application's scope is built inside onConnect: the buffer must exist first.
        self.send_buffer = SendBuffer(self, settings.QW_SOCKET_SEND_BUDGET_BYTES // 2)
        return super().onConnect(request)

    def onClose(self, wasClean, code, reason):
        if self.send_buffer is not None:
            self.send_buffer.connection_closed()
        super().onClose(wasClean, code, reason)

    def serverSend(self, content, binary=False):
        if self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
            return  # the application hears websocket.disconnect next
        super().serverSend(content, binary)

    def handle_reply(self, message):
        if message.get("type") == "websocket.close" and self.state == self.STATE_OPEN:
            code = message.get("code") or 1000
            if code == SLOW_CONSUMER_CODE:
                self.closeHandshakeTimeout = SLOW_CONSUMER_CLOSE_SECONDS
            self.sendClose(code=code, reason=message.get("reason") or None)
            return
        super().handle_reply(message)

    def _max_message_size_exceeded(self, msg_size, max_msg_size, reason) -> None:
        logger.warning(
            "ws refused: frame of %s bytes over the %s byte limit from %s (close 1009 too_large)",
            msg_size,
            max_msg_size,
            self.client_addr[0] if getattr(self, "client_addr", None) else "?",
        )
        self._fail_connection(self.CLOSE_STATUS_CODE_MESSAGE_TOO_BIG, "too_large")


class QWWebSocketFactory(WebSocketFactory):
    protocol = QWWebSocketProtocol

    def setProtocolOptions(self, **options):
        # autobahn fails an oversized frame by dropping TCP (the browser sees
        # 1006) unless failByDrop is off; daphne does not expose the option.
        options.setdefault("failByDrop", False)
        super().setProtocolOptions(**options)


class QWServer(Server):
    def create_application(self, protocol, scope):
        send_buffer = getattr(protocol, "send_buffer", None)
        if send_buffer is not None:
            scope["extensions"] = {
                **scope.get("extensions", {}),
                SEND_BUFFER_EXTENSION: send_buffer,
            }
        return super().create_application(protocol, scope)
