"""Bulk creation, reading and announcements at the service level (query counts, DB state)."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications import services
from notifications.models import Notification
from realtime.models import Event

pytestmark = pytest.mark.django_db

User = get_user_model()


def bulk_users(count: int, *, prefix: str = "u", is_active: bool = True) -> list[int]:
    users = User.objects.bulk_create(
        [User(username=f"{prefix}{i}", is_active=is_active) for i in range(count)]
    )
    return [user.id for user in users]


def queries_for_bulk_create(user_ids: list[int]) -> int:
    with CaptureQueriesContext(connection) as captured:
        created = services.notifications_create_bulk(
            user_ids=user_ids, notification_type="task_status", title="Moved"
        )
    assert created == len(user_ids)
    return len(captured)


def test_bulk_creation_runs_the_same_queries_for_10_and_1000_users():
    few = queries_for_bulk_create(bulk_users(10, prefix="few"))
    many = queries_for_bulk_create(bulk_users(1000, prefix="many"))
    # savepoint, notifications INSERT, inbox upsert with the events INSERT (one
    # statement, issue 18), the users whose settings want every notification
    # away (SPEC §10: none here), release
    assert few == many == 5


def test_bulk_creation_gives_each_user_one_notification_and_one_event():
    user_ids = bulk_users(3)
    services.notifications_create_bulk(
        user_ids=user_ids, notification_type="info", title="Hi", message="m", link="/x"
    )
    for user_id in user_ids:
        notification = Notification.objects.get(user_id=user_id)
        event = Event.objects.get(user_id=user_id)
        assert (event.seq, event.type) == (1, "notification")
        assert event.payload["notification_id"] == notification.id
        assert (event.payload["title"], event.payload["message"], event.payload["link"]) == (
            "Hi",
            "m",
            "/x",
        )


def test_bulk_creation_for_nobody_does_nothing():
    with CaptureQueriesContext(connection) as captured:
        assert (
            services.notifications_create_bulk(user_ids=[], notification_type="x", title="t") == 0
        )
    assert len(captured) == 0


def test_marking_read_twice_records_one_event(make_user):
    alice = make_user("alice")
    notification = Notification.objects.create(user=alice, title="Hi")

    assert services.notification_mark_read(user_id=alice.id, notification_id=notification.id)
    first_read = Notification.objects.get(id=notification.id).read_at
    assert services.notification_mark_read(user_id=alice.id, notification_id=notification.id)

    assert Notification.objects.get(id=notification.id).read_at == first_read is not None
    assert list(Event.objects.filter(user=alice).values_list("seq", "type")) == [
        (1, "notification"),
        (2, "notification_read"),
    ]
    assert Event.objects.get(seq=2, user=alice).payload["notification_ids"] == [notification.id]


def test_marking_another_users_notification_fails_and_changes_nothing(make_user):
    alice = make_user("alice")
    mallory = make_user("mallory")
    notification = Notification.objects.create(user=alice, title="Hi")

    assert not services.notification_mark_read(user_id=mallory.id, notification_id=notification.id)
    assert Notification.objects.get(id=notification.id).read_at is None
    assert not Event.objects.filter(user=mallory).exists()
    assert Event.objects.filter(user=alice).count() == 1


def test_mark_all_read_records_one_event_only_when_something_was_unread(make_user):
    alice = make_user("alice")
    bob = make_user("bob")
    for title in ["a", "b"]:
        Notification.objects.create(user=alice, title=title)
    Notification.objects.create(user=bob, title="bob's")

    assert services.notifications_mark_all_read(user_id=alice.id) == 2
    assert services.notifications_mark_all_read(user_id=alice.id) == 0

    assert not Notification.objects.filter(user=alice, read_at__isnull=True).exists()
    assert Notification.objects.filter(user=bob, read_at__isnull=True).count() == 1
    reads = list(Event.objects.filter(user=alice, type="notification_read"))
    assert len(reads) == 1
    assert reads[0].payload["all"] is True
    assert reads[0].seq == 3


def test_announcement_reaches_every_active_user_once_across_chunks(monkeypatch):
    monkeypatch.setattr(services, "ANNOUNCEMENT_CHUNK", 4)
    active = bulk_users(10, prefix="active")
    inactive = bulk_users(2, prefix="gone", is_active=False)

    with CaptureQueriesContext(connection) as captured:
        sent = services.announcement_send(title="Maintenance at 22:00", link="/status")

    assert sent == 10
    assert sorted(
        Notification.objects.filter(notification_type="announcement").values_list(
            "user_id", flat=True
        )
    ) == sorted(active)
    assert not Notification.objects.filter(user_id__in=inactive).exists()
    # 3 chunks of ≤ 4 users: one id query, 4 writes (the inbox upsert and the
    # events INSERT are one statement, issue 18) and the settings read (who
    # wants every notification while away) each, plus the empty last read.
    assert len(captured) == 3 * 6 + 1


def test_announcement_to_selected_users_skips_unknown_ids():
    chosen = bulk_users(3)
    sent = services.announcement_send(title="Hi", user_ids=[*chosen, 999_999_999])
    assert sent == 3
    assert sorted(Notification.objects.values_list("user_id", flat=True)) == sorted(chosen)
