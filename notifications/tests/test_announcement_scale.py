"""An announcement to 10,000 users: each gets exactly one notification and one event.

Also prints how long it took and how many queries it ran (figures, not assertions:
tests never assert timings). Run with `-s -m slow` to see them.
"""

import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from notifications.services import announcement_send
from realtime.models import Event
from realtime.publisher import publisher

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

USERS = 10_000


def test_announcement_to_10000_users_gives_each_one_notification_and_one_event():
    User = get_user_model()
    User.objects.bulk_create(User(username=f"crowd{i}") for i in range(USERS))
    groups: set[str] = set()

    def listen(messages):
        groups.update(group for group, _ in messages)

    publisher.listeners.append(listen)
    try:
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            sent = announcement_send(title="Scheduled maintenance", link="/status")
        elapsed = time.perf_counter() - started
    finally:
        publisher.listeners.remove(listen)

    assert sent == USERS
    per_user = Notification.objects.values("user_id").annotate(n=Count("id"))
    assert {row["n"] for row in per_user} == {1}
    assert per_user.count() == USERS
    events = Event.objects.filter(type="notification")
    assert events.count() == USERS
    assert set(events.values_list("seq", flat=True).distinct()) == {1}
    assert len(groups) == USERS

    db_seconds = sum(float(query["time"]) for query in captured.captured_queries)
    print(
        f"\nannouncement to {USERS} users: {elapsed:.2f} s wall "
        f"({db_seconds:.2f} s in {len(captured)} queries, the rest building rows "
        f"and publishing {len(groups)} user groups to Redis)"
    )
