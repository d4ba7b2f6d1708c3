"""Web Push end to end (SPEC §10) against a push service on localhost (offline_kit.PushService).

The service accepts a push only if its VAPID JWT verifies against the key
the server publishes at /api/push/vapid-public-key/ and its aes128gcm body
decrypts with the subscription's private key, as a browser's would. No
push service of a browser vendor is reachable from here, and Chromium
cannot subscribe without one: tests/browser/test_service_worker.py covers
the browser side up to that point.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from chat.services import room_create
from conftest import authed_client
from notifications.models import PendingDelivery, PushSubscription
from notifications.services import notifications_create_bulk
from notifications.tests.offline_kit import eventually
from notifications.tests.offline_kit import send_over_rest as send
from presence.store import current_store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def people(make_user, settings, push_service, offline_worker):
    settings.QW_PUBLIC_URL = "https://qw.example.com"
    settings.QW_EMAIL_DELAY_SECONDS = 3600  # email is not what these tests look at
    settings.QW_PUSH_TIMEOUT_SECONDS = 2
    users = [make_user(name) for name in ("alice", "bob", "carol")]
    offline_worker()
    return users


def subscribe(user, push_service, token: str) -> None:
    client = authed_client(user)
    published = client.get("/api/push/vapid-public-key/").json()["public_key"]
    assert published == push_service.vapid_public_key
    response = client.post("/api/push/subscriptions/", push_service.subscribe(token), format="json")
    assert response.status_code == 201, response.content


def pushes_settled(user) -> bool:
    return not PendingDelivery.objects.filter(user=user, channel="push").exists()


def test_a_message_to_someone_away_is_pushed_encrypted_and_signed(people, push_service):
    alice, bob, _ = people
    subscribe(alice, push_service, "alice-laptop")
    send(bob, alice, "Are you free for a call about task 7?")

    (push,) = eventually(lambda: push_service.delivered_to("alice-laptop"), what="the push")
    assert push_service.refused == []
    assert push.payload == {
        "type": "chat_message",
        "title": "bob",
        "body": "Are you free for a call about task 7?",
        "link": f"https://qw.example.com/chat/?with={bob.id}",
        "tag": f"dm-{bob.id}",
    }
    assert push.headers["topic"] == f"dm-{bob.id}"
    assert int(push.headers["ttl"]) > 0
    eventually(lambda: pushes_settled(alice), what="the push row deleted")
    assert PushSubscription.objects.get(user=alice).last_success_at is not None


def test_a_long_message_is_cut_to_200_characters_and_hide_content_hides_it(people, push_service):
    alice, bob, carol = people
    subscribe(alice, push_service, "alice")
    subscribe(carol, push_service, "carol")
    authed_client(carol).patch("/api/notification-settings/", {"hide_content": True}, format="json")
    send(bob, alice, "x" * 500)
    send(bob, carol, "the secret plan")

    (to_alice,) = eventually(lambda: push_service.delivered_to("alice"), what="alice's push")
    (to_carol,) = eventually(lambda: push_service.delivered_to("carol"), what="carol's push")
    assert len(to_alice.payload["body"]) == 200
    assert to_carol.payload["body"] == "New message"


def test_a_410_deletes_the_subscription(people, push_service):
    alice, bob, _ = people
    subscribe(alice, push_service, "expired")
    push_service.answer("expired", 410)
    send(bob, alice, "hello?")

    eventually(
        lambda: not PushSubscription.objects.filter(user=alice).exists(),
        what="the subscription deleted",
    )
    eventually(lambda: pushes_settled(alice), what="the push row settled")
    assert push_service.answered == [("expired", 410)]


def test_a_500_is_retried_until_the_push_service_accepts(people, push_service):
    alice, bob, _ = people
    subscribe(alice, push_service, "flaky")
    push_service.answer("flaky", 500, 500)
    send(bob, alice, "third time lucky")

    (push,) = eventually(lambda: push_service.delivered_to("flaky"), what="the retried push")
    # the row goes after the worker has recorded the answer on the subscription
    eventually(lambda: pushes_settled(alice), what="the push row settled")
    assert push.payload["body"] == "third time lucky"
    assert push_service.answered == [("flaky", 500), ("flaky", 500), ("flaky", 201)]
    assert PushSubscription.objects.get(user=alice).failure_count == 0


def test_a_hanging_push_service_does_not_stall_other_deliveries(people, push_service, settings):
    alice, bob, carol = people
    settings.QW_PUSH_TIMEOUT_SECONDS = 30  # alice's request stays open on the worker's side
    subscribe(alice, push_service, "hangs")
    subscribe(carol, push_service, "works")
    push_service.answer("hangs", "hang")
    send(bob, alice, "stuck")
    eventually(lambda: push_service.hanging, what="alice's push hanging")

    send(bob, carol, "not stuck")

    (push,) = eventually(lambda: push_service.delivered_to("works"), what="carol's push")
    assert push.payload["body"] == "not stuck"
    # alice's request was still held open when carol's went through
    assert push_service.hanging == {"hangs:stuck"}
    push_service.release.set()


def test_someone_on_the_page_gets_no_pending_row(people, push_service, settings):
    """Presence decides at send time: an open socket means no row at all."""
    alice, bob, _ = people
    subscribe(alice, push_service, "alice")
    # alice's socket, as a connected consumer registers it
    asyncio.run(current_store().touch(user_id=alice.id, socket="test-socket", ttl=30))
    try:
        send(bob, alice, "you are here")
        assert not PendingDelivery.objects.filter(user=alice).exists()
    finally:
        asyncio.run(current_store().leave(user_id=alice.id, socket="test-socket"))


def test_a_muted_conversation_pushes_nothing(people, push_service):
    alice, bob, carol = people
    subscribe(alice, push_service, "alice")
    muted = authed_client(alice).post("/api/chat/mutes/", {"with": bob.id}, format="json")
    assert muted.status_code == 201
    send(bob, alice, "muted")
    send(carol, alice, "not muted")

    (push,) = eventually(lambda: push_service.delivered_to("alice"), what="carol's push")
    eventually(lambda: pushes_settled(alice), what="both push rows settled")
    assert push.payload["body"] == "not muted"
    assert len(push_service.delivered_to("alice")) == 1


def test_quiet_hours_hold_the_push_until_they_end(people, push_service):
    alice, bob, _ = people
    subscribe(alice, push_service, "alice")
    zone = "Asia/Tokyo"
    local_now = timezone.now().astimezone(ZoneInfo(zone))
    start = (local_now - dt.timedelta(hours=1)).strftime("%H:%M")
    end = (local_now + dt.timedelta(hours=2)).strftime("%H:%M")
    authed_client(alice).patch(
        "/api/notification-settings/",
        {"quiet_hours": {"start": start, "end": end, "tz": zone}},
        format="json",
    )
    send(bob, alice, "it is night in Tokyo")

    row = eventually(
        lambda: PendingDelivery.objects.filter(
            user=alice, channel="push", due_at__gt=timezone.now() + dt.timedelta(hours=1)
        ).first(),
        what="the push rescheduled to the end of the quiet hours",
    )
    due_local = row.due_at.astimezone(ZoneInfo(zone))
    assert due_local.strftime("%H:%M") == end
    assert push_service.answered == []


def test_a_notification_reaches_a_user_with_push_set_to_all(people, push_service):
    alice, _, carol = people
    subscribe(alice, push_service, "alice")
    subscribe(carol, push_service, "carol")
    authed_client(alice).patch("/api/notification-settings/", {"push": "all"}, format="json")
    notifications_create_bulk(
        user_ids=[alice.id, carol.id],
        notification_type="task_status",
        title="Task 7 moved to review",
        message="by bob",
        link="/tasks/7",
    )

    (push,) = eventually(lambda: push_service.delivered_to("alice"), what="alice's push")
    assert push.payload["type"] == "notification"
    assert push.payload["title"] == "Task 7 moved to review"
    assert push.payload["link"] == "https://qw.example.com/tasks/7"
    # carol keeps the default (direct messages and mentions): no row, no push
    assert not PendingDelivery.objects.filter(user=carol).exists()
    assert push_service.delivered_to("carol") == []


def test_a_mention_is_pushed_by_default_unless_its_room_is_muted(people, push_service):
    alice, bob, _ = people
    subscribe(alice, push_service, "alice")
    loud = room_create(creator_id=bob.id, name="loud", member_ids=[alice.id])
    quiet = room_create(creator_id=bob.id, name="quiet", member_ids=[alice.id])
    muted = authed_client(alice).post("/api/chat/mutes/", {"room": quiet.id}, format="json")
    assert muted.status_code == 201
    for room in (quiet, loud):
        notifications_create_bulk(
            user_ids=[alice.id],
            notification_type="mention",
            title=f"bob mentioned you in {room.name}",
            message="@alice look",
            link=f"/chat/?room={room.id}#message-1",
        )

    eventually(lambda: pushes_settled(alice), what="both mention pushes settled")
    (push,) = push_service.delivered_to("alice")
    assert push.payload["title"] == "bob mentioned you in loud"
    assert push.payload["link"] == f"https://qw.example.com/chat/?room={loud.id}#message-1"
