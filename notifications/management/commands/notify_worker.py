"""`python manage.py notify_worker`: send pending pushes and emails (SPEC §10).

Run any number of them (deploy/systemd/quantumworks-notify@.service); they
share the work through row claims (notifications/worker.py). SIGTERM stops
claiming and lets the sends in flight finish.
"""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand
from prometheus_client import start_http_server

from notifications.worker import Worker


class Command(BaseCommand):
    help = "Send pending Web Push and missed-message email deliveries."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--concurrency", type=int, default=None, help="sending threads")
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="serve this worker's Prometheus metrics on 127.0.0.1:<port>/metrics",
        )
        parser.add_argument("--metrics-host", default="127.0.0.1")

    def handle(self, *args, concurrency=None, metrics_port=None, metrics_host="127.0.0.1", **kw):
        if metrics_port:
            start_http_server(metrics_port, addr=metrics_host)
        worker = Worker(concurrency=concurrency)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: worker.stop())
        self.stdout.write(f"notify worker {worker.token[:8]} running", ending="\n")
        self.stdout.flush()
        worker.run()
