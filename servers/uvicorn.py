"""The uvicorn flavour of `python -m servers --server uvicorn`.

Same promises as the daphne one (see servers/__main__.py): with the default
WebSocket implementation (websockets-sansio) our protocol subclass,
servers.ws_uvicorn, gives each socket the send budget (4008), closes
frames over 64 KiB with 1009 `too_large` and bad UTF-8 with 1007; the
access log never shows a token (uvicorn's loggers propagate to the root
handler, whose filter redacts `token=`), and SIGTERM/SIGINT close every socket
with 4012 before uvicorn's own shutdown (which would send 1012) runs.
"""

from __future__ import annotations

import asyncio
import logging
from types import FrameType

# A burst of reconnects (every client after a deploy) must queue, not be reset.
LISTEN_BACKLOG = 4096


class QuietShutdownCancel(logging.Filter):
    """After the 4012 closes, uvicorn cancels the sockets' application tasks at its
    graceful timeout and logs each one as an "Exception in ASGI application"
    traceback: expected on shutdown, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, asyncio.CancelledError)


def run(*, host: str, port: int, access_log: bool, ws: str | type) -> None:
    import uvicorn
    from django.conf import settings

    from quantumworks.asgi import application
    from servers.gc_settings import settle_heap
    from servers.http_uvicorn import QWHttpToolsProtocol
    from servers.shutdown import graceful_stop

    if ws == "websockets-sansio":
        from servers.ws_uvicorn import QWWebSocketProtocol

        ws = QWWebSocketProtocol
    logging.getLogger("uvicorn.error").addFilter(QuietShutdownCancel())
    if not access_log:
        # uvicorn logs every WebSocket accept and close at INFO on this logger.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    class Server(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            self.stop = graceful_stop(self.finish)

        def finish(self) -> None:
            self.should_exit = True

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            # uvicorn's own shutdown would close the sockets with 1012: 4012 first.
            self.stop(sig, frame)

    config = uvicorn.Config(
        application,
        host=host,
        port=port,
        loop="uvloop",
        http=QWHttpToolsProtocol,  # httptools with the request-head limits
        ws=ws,
        ws_max_size=settings.QW_MAX_FRAME_BYTES,
        # The heartbeat wheel pings with each heartbeat (servers.ws_uvicorn); uvicorn's
        # own keepalive would add two timers and a ping per socket every 20 s.
        ws_ping_interval=None,
        ws_ping_timeout=None,
        ws_per_message_deflate=False,
        lifespan="off",
        log_config=None,  # Django's LOGGING (with the token filter) stays in charge
        access_log=access_log,
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=1,
        server_header=False,
        # uvicorn's ProxyHeadersMiddleware: X-Forwarded-For/-Proto only from
        # QW_TRUSTED_PROXIES, the right-most untrusted hop (servers/proxy_daphne.py
        # gives daphne the same middleware's answer).
        proxy_headers=bool(settings.QW_TRUSTED_PROXIES),
        forwarded_allow_ips=settings.QW_TRUSTED_PROXIES or None,
    )
    print(f"QuantumWorks Realtime listening on http://{host}:{port} (uvicorn)", flush=True)
    server = Server(config)
    settle_heap()
    server.run()
