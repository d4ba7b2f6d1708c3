"""Fixtures of the offline-delivery tests: the real SMTP server and push service, a worker."""

from __future__ import annotations

import threading

import environ
import pytest

from notifications import webpush
from notifications.tests.offline_kit import PushService, SmtpSink
from notifications.worker import Worker


@pytest.fixture
def smtp(settings):
    """aiosmtpd on localhost, and EMAIL_URL pointing at it (as settings.py reads it)."""
    sink = SmtpSink().start()
    for name, value in environ.Env.email_url_config(sink.url).items():
        setattr(settings, name, value)
    yield sink
    sink.stop()


@pytest.fixture
def vapid(settings):
    """A VAPID key of the test's own, as QW_VAPID_PRIVATE_KEY gives it."""
    settings.QW_VAPID_PRIVATE_KEY = webpush.generate_private_key()
    settings.QW_VAPID_SUBJECT = "mailto:ops@quantumworks.test"
    webpush.vapid.cache_clear()
    yield settings.QW_VAPID_PRIVATE_KEY
    webpush.vapid.cache_clear()


@pytest.fixture
def push_service(vapid, settings):
    settings.QW_PUSH_ALLOW_LOCAL = True
    service = PushService(
        vapid_public_key=webpush.public_key(), subject=settings.QW_VAPID_SUBJECT
    ).start()
    yield service
    service.stop()


@pytest.fixture
def offline_worker(transactional_db, settings):
    """`notify_worker`'s loop on a thread of the test process; stopped at teardown."""
    settings.QW_NOTIFY_POLL_SECONDS = 0.5
    settings.QW_NOTIFY_BACKOFF_SECONDS = 0.2
    started: list[tuple[Worker, threading.Thread]] = []

    def start(**options) -> Worker:
        worker = Worker(**options)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.stop()
        thread.join(timeout=15)
