"""Run one server process: uvicorn or daphne, with our limits, redacted access log, graceful stop.

    python -m quantumworks.serve --host 127.0.0.1 --port 8000 [--server uvicorn|daphne]

uvicorn (uvloop + httptools, quantumworks/serve_uvicorn.py) is the default:
on `make bench` it held 10,000 sockets opened at 500/s where daphne reset
most of them, and delivered more chat per CPU second (docs/performance.md).

- frames over 64 KiB are refused by the WebSocket layer itself (close 1009
  `too_large`), and each socket has a send budget (4008 `slow_consumer`):
  our protocol subclasses, quantumworks.ws_uvicorn (websockets-sansio only)
  and quantumworks.wsprotocol;
- the access log never shows a token (`token=` is redacted);
- on SIGTERM/SIGINT every open socket is closed with 4012 `service_restart`
  (clients reconnect to another node at once), then the process exits
  within 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable

logger = logging.getLogger("quantumworks.serve")
DEFAULT_SERVER = "uvicorn"
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


def graceful_stop(finish: Callable[[], None]) -> Callable[..., None]:
    """A signal handler: close every socket with 4012, then `finish()` (stop the server).

    Runs at most once; a hard exit follows after 5 s if the graceful one hangs.
    """
    started = False

    def stop(signum, frame) -> None:
        nonlocal started
        if started:
            return
        started = True
        # A hard stop if the graceful one hangs: the spec promises exit within 5 s.
        signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
        signal.alarm(5)
        logger.info("signal %s: closing sockets with 4012", signum)
        loop = asyncio.get_event_loop()

        async def shutdown() -> None:
            from quantumworks.consumers import close_all_for_restart

            try:
                await asyncio.wait_for(close_all_for_restart(), timeout=3)
                await asyncio.sleep(0.3)  # let the close frames leave
            finally:
                finish()

        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(shutdown()))

    return stop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("QW_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("QW_PORT", "8000")))
    parser.add_argument("--access-log", action="store_true", help="write an access log to stdout")
    parser.add_argument(
        "--server",
        choices=["uvicorn", "daphne"],
        default=os.environ.get("QW_SERVER", DEFAULT_SERVER),
        help=f"the ASGI server (default {DEFAULT_SERVER}: see docs/performance.md)",
    )
    parser.add_argument(
        "--ws",
        default=os.environ.get("QW_UVICORN_WS", "websockets-sansio"),
        help="uvicorn's WebSocket implementation (websockets-sansio, websockets, wsproto)",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quantumworks.settings")
    if args.server == "uvicorn":
        from quantumworks import serve_uvicorn

        serve_uvicorn.run(host=args.host, port=args.port, access_log=args.access_log, ws=args.ws)
        return
    # daphne.server installs the asyncio reactor on import: before anything else twisted.
    import daphne.server
    from daphne.access import AccessLogGenerator
    from django.conf import settings
    from twisted.internet import reactor

    from quantumworks.asgi import application
    from quantumworks.wsprotocol import QWServer, QWWebSocketFactory

    daphne.server.WebSocketFactory = QWWebSocketFactory
    proxy_headers = {}
    if settings.QW_TRUSTED_PROXIES:
        from quantumworks.proxy import install_daphne_parser, trusted_networks

        install_daphne_parser(trusted_networks(settings.QW_TRUSTED_PROXIES))
        proxy_headers = {
            "proxy_forwarded_address_header": "X-Forwarded-For",
            "proxy_forwarded_proto_header": "X-Forwarded-Proto",
        }
    server = QWServer(
        application=application,
        endpoints=[f"tcp:port={args.port}:interface={args.host}:backlog={LISTEN_BACKLOG}"],
        signal_handlers=False,
        action_logger=AccessLogGenerator(RedactingStream(sys.stdout)) if args.access_log else None,
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
    print(f"QuantumWorks Realtime listening on http://{args.host}:{args.port}", flush=True)
    server.run()


if __name__ == "__main__":
    main()
