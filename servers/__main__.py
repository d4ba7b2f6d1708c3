"""Run one server process: uvicorn or daphne, with our limits, redacted access log, graceful stop.

    python -m servers --host 127.0.0.1 --port 8000 [--server uvicorn|daphne]

uvicorn (uvloop + httptools, servers/uvicorn.py) is the default:
on `make bench` it held 10,000 sockets opened at 500/s where daphne reset
most of them, and delivered more chat per CPU second (docs/performance.md).

- frames over 64 KiB are refused by the WebSocket layer itself (close 1009
  `too_large`), and each socket has a send budget (4008 `slow_consumer`):
  our protocol subclasses, servers.ws_uvicorn (websockets-sansio only)
  and servers.ws_daphne;
- the access log never shows a token (`token=` is redacted);
- on SIGTERM/SIGINT every open socket is closed with 4012 `service_restart`
  (clients reconnect to another node at once), then the process exits
  within 5 s.
"""

from __future__ import annotations

import argparse
import os

DEFAULT_SERVER = "uvicorn"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m servers", description=__doc__.splitlines()[0])
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
    import django

    django.setup()
    from realtime import registry

    registry.start_process_services()
    if args.server == "uvicorn":
        from servers import uvicorn

        uvicorn.run(host=args.host, port=args.port, access_log=args.access_log, ws=args.ws)
        return
    from servers import daphne

    daphne.run(host=args.host, port=args.port, access_log=args.access_log)


if __name__ == "__main__":
    main()
