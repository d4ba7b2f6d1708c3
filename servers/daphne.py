"""The daphne flavour of `python -m servers --server daphne`.

Same promises as the uvicorn one (servers/uvicorn.py): our HTTP channel,
servers.http_daphne, applies the request-head limits and header timeout of
servers.request_head; our WebSocket protocol subclass,
servers.ws_daphne, gives each socket the send budget (4008) and closes frames
over 64 KiB with 1009 `too_large`; the access log never shows a token; and
SIGTERM/SIGINT close every socket with 4012 (servers.shutdown).
"""

from __future__ import annotations

import signal
import sys

# twisted's default listen queue is 50: a burst of connects beyond it is reset.
LISTEN_BACKLOG = 4096


class RedactingStream:
    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        from quantumworks.logredact import redact

        self.stream.write(redact(text))

    def flush(self) -> None:
        self.stream.flush()


def run(*, host: str, port: int, access_log: bool) -> None:
    # daphne.server installs the asyncio reactor on import: before anything else twisted.
    import daphne.server
    from daphne.access import AccessLogGenerator
    from django.conf import settings
    from twisted.internet import reactor

    from quantumworks.asgi import application
    from servers.gc_settings import settle_heap
    from servers.http_daphne import QWHTTPFactory
    from servers.shutdown import graceful_stop
    from servers.ws_daphne import QWServer, QWWebSocketFactory

    daphne.server.HTTPFactory = QWHTTPFactory
    daphne.server.WebSocketFactory = QWWebSocketFactory
    proxy_headers = {}
    if settings.QW_TRUSTED_PROXIES:
        from servers.proxy_daphne import install_daphne_parser

        install_daphne_parser(settings.QW_TRUSTED_PROXIES)
        proxy_headers = {
            "proxy_forwarded_address_header": "X-Forwarded-For",
            "proxy_forwarded_proto_header": "X-Forwarded-Proto",
        }
    server = QWServer(
        application=application,
        endpoints=[f"tcp:port={port}:interface={host}:backlog={LISTEN_BACKLOG}"],
        signal_handlers=False,
        action_logger=AccessLogGenerator(RedactingStream(sys.stdout)) if access_log else None,
        websocket_max_message_size=settings.QW_MAX_FRAME_BYTES,
        websocket_max_frame_size=settings.QW_MAX_FRAME_BYTES,
        ping_interval=20,
        ping_timeout=30,
        application_close_timeout=5,
        server_name="quantumworks",
        **proxy_headers,
    )

    stop = graceful_stop(lambda: reactor.callLater(0, reactor.stop))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"QuantumWorks Realtime listening on http://{host}:{port}", flush=True)
    settle_heap()
    server.run()
