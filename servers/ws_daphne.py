"""Our daphne WebSocket protocol: what SPEC §5 needs from the server itself.

daphne (through autobahn) writes every frame the application sends into an
unbounded user-space buffer, raises into the application when it sends on a
closing socket, drops the close reason, and closes an oversized frame with
autobahn's own sentence. This subclass, installed by `python -m servers`:

- exposes each socket's outgoing buffer to the consumer as the ASGI
  extension `qw.send_buffer` (see `TwistedSendBuffer`), so the consumer can bound
  what it queues for a client that stopped reading (4008 `slow_consumer`);
- drops sends on a socket that is already closing: the application hears
  `websocket.disconnect` next, instead of an exception in the middle of a
  replay that skips its cleanup;
- sends the application's close reason, and `too_large` with 1009;
- logs one line per refused oversized frame.
"""

from __future__ import annotations

from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

from realtime.transport import (
    SEND_BUFFER_EXTENSION,
    SLOW_CONSUMER_CLOSE_SECONDS,
    SLOW_CONSUMER_CODE,
    TOO_LARGE_REASON,
    DrainableBuffer,
    log_oversized_frame,
)


class TwistedSendBuffer(DrainableBuffer):
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
        super().__init__()
        self.protocol = protocol
        self.transport = protocol.transport
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
        transport = self.transport
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

    # twisted IPushProducer, called by the transport
    def pauseProducing(self) -> None:
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()
        self.resumed()

    def stopProducing(self) -> None:
        self.connection_closed()


class QWWebSocketProtocol(WebSocketProtocol):
    send_buffer: TwistedSendBuffer | None = None

    def onConnect(self, request):
        from django.conf import settings

        # The application's scope is built inside onConnect: the buffer must exist first.
        self.send_buffer = TwistedSendBuffer(self, settings.QW_SOCKET_SEND_BUDGET_BYTES // 2)
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
                # autobahn's default wait for the client's close reply is 1 s.
                self.closeHandshakeTimeout = SLOW_CONSUMER_CLOSE_SECONDS
            self.sendClose(code=code, reason=message.get("reason") or None)
            return
        super().handle_reply(message)

    def _max_message_size_exceeded(self, msg_size, max_msg_size, reason) -> None:
        log_oversized_frame(
            msg_size,
            max_msg_size,
            self.client_addr[0] if getattr(self, "client_addr", None) else "?",
        )
        self._fail_connection(self.CLOSE_STATUS_CODE_MESSAGE_TOO_BIG, TOO_LARGE_REASON)


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
