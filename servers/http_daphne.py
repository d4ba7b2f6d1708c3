"""Our daphne HTTP channel: the request-head limits of servers.request_head.

twisted's HTTPChannel takes request and header lines up to 16 KiB (a longer
one is dropped with no answer), a 16 KiB head, 500 headers, and waits 60 s
of *silence* before dropping a connection: a client sending a byte a minute
holds it for ever. This subclass, installed by servers.daphne, refuses a line
over 8 KiB (414 for the request line, 431 for a header), more than 128
headers and a head over 64 KiB (431) as the uvicorn flavour does, and
answers 408 to a head not complete within QW_HEADER_TIMEOUT_SECONDS however
it trickles in; every refusal, twisted's own 400s included, logs one line.
"""

from __future__ import annotations

from daphne.http_protocol import HTTPFactory
from twisted.web.http import HTTPChannel, _GenericHTTPChannelProtocol

from servers.request_head import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_LINE_BYTES,
    header_timeout,
    log_refused,
    refusal,
)


class QWHTTPChannel(HTTPChannel):
    MAX_LENGTH = MAX_LINE_BYTES
    totalHeadersSize = MAX_HEAD_BYTES
    head_timer = None
    head_bytes = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.start_head_timer()

    def connectionLost(self, reason) -> None:
        self.stop_head_timer()
        super().connectionLost(reason)

    def start_head_timer(self) -> None:
        self.head_bytes = 0
        self.head_timer = self.callLater(header_timeout(), self.head_timed_out)

    def stop_head_timer(self) -> None:
        if self.head_timer is not None and self.head_timer.active():
            self.head_timer.cancel()
        self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if self._handlingRequest:
            # A pipelined head waits behind a response still being written.
            self.start_head_timer()
        elif self.head_bytes == 0:
            self.transport.loseConnection()  # an idle connection: nothing to answer
        else:
            self.refuse(408, f"request head not complete after {header_timeout():g} s")

    def refuse(self, status: int, why: str) -> None:
        self.stop_head_timer()
        log_refused(status, why, self.transport.getPeer().host)
        self.transport.write(refusal(status))
        self.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.head_timer is None and self.line_mode and not self._handlingRequest:
            self.start_head_timer()  # the next request on a kept-alive connection
        if self.head_timer is not None:
            self.head_bytes += len(data)
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self.refuse(431, f"request head over {self.totalHeadersSize} bytes")
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._HTTPChannel__first_line:  # type: ignore[attr-defined]
            self.refuse(414, f"request line over {self.MAX_LENGTH} bytes")
        else:
            self.refuse(431, f"header line over {self.MAX_LENGTH} bytes")

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= MAX_HEADERS:
            self.refuse(431, f"more than {MAX_HEADERS} headers")
            return False
        return super().headerReceived(line)

    def allHeadersReceived(self) -> None:
        self.stop_head_timer()
        super().allHeadersReceived()

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.stop_head_timer()
        log_refused(400, "malformed request head", self.transport.getPeer().host)
        super()._respondToBadRequestAndDisconnect()


def _channel(factory: HTTPFactory) -> _GenericHTTPChannelProtocol:
    return _GenericHTTPChannelProtocol(QWHTTPChannel())


class QWHTTPFactory(HTTPFactory):
    protocol = _channel
