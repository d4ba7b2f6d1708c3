"""Announcements from the Django admin reach the users' sockets (SPEC §1 moderation, §5)."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from conftest import token_for
from notifications.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections():
    """The sync_to_async thread's connection would keep the test database from being dropped."""
    yield
    await sync_to_async(connections.close_all)()


USERS = "/admin/auth/user/"
ANNOUNCE = "/admin/notifications/notification/announce/"


@sync_to_async
def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
async def admin_client():
    admin = await sync_to_async(get_user_model().objects.create_superuser)(
        "root", "root@example.com", "correct-horse-battery"
    )
    return await logged_in(admin)


async def test_action_sends_announcement_to_selected_users_only(
    admin_client, amake_user, open_socket
):
    alice = await amake_user("alice")
    bob = await amake_user("bob")
    carol = await amake_user("carol")
    sockets = {u.id: await open_socket(token=token_for(u)) for u in (alice, bob, carol)}
    selection = {"action": "send_announcement", "_selected_action": [alice.id, bob.id]}

    form_page = await sync_to_async(admin_client.post)(USERS, {**selection, "index": 0})
    assert form_page.status_code == 200
    assert b"2 selected users" in form_page.content

    sent = await sync_to_async(admin_client.post)(
        USERS,
        {**selection, "apply": "1", "title": "Maintenance", "message": "at 22:00", "link": "/s"},
    )
    assert sent.status_code == 302

    for user in (alice, bob):
        frame = await sockets[user.id].receive_type("notification")
        stored = await Notification.objects.aget(user=user)
        assert frame["notification_id"] == stored.id
        assert (frame["notification_type"], frame["title"], frame["message"], frame["link"]) == (
            "announcement",
            "Maintenance",
            "at 22:00",
            "/s",
        )
    await sockets[carol.id].assert_nothing()
    assert not await Notification.objects.filter(user=carol).aexists()


async def test_announce_to_everyone_reaches_every_active_user(
    admin_client, amake_user, open_socket
):
    alice = await amake_user("alice")
    bob = await amake_user("bob")
    gone = await amake_user("gone", is_active=False)
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))

    page = await sync_to_async(admin_client.get)(ANNOUNCE)
    assert page.status_code == 200
    assert b"every active user (3)" in page.content  # alice, bob and the admin

    sent = await sync_to_async(admin_client.post)(ANNOUNCE, {"apply": "1", "title": "Hello all"})
    assert sent.status_code == 302

    for socket in (alice_socket, bob_socket):
        frame = await socket.receive_type("notification")
        assert (frame["notification_type"], frame["title"]) == ("announcement", "Hello all")
        await socket.assert_nothing()
    assert await Notification.objects.filter(notification_type="announcement").acount() == 3
    assert not await Notification.objects.filter(user=gone).aexists()


async def test_announcement_with_a_javascript_link_is_refused(admin_client, amake_user):
    await amake_user("alice")

    page = await sync_to_async(admin_client.post)(
        ANNOUNCE, {"apply": "1", "title": "Click", "link": "javascript:alert(1)"}
    )

    assert page.status_code == 200
    assert b"http(s)://" in page.content
    assert not await Notification.objects.aexists()


async def test_staff_without_permission_cannot_announce(amake_user):
    staff = await amake_user("helper", is_staff=True)
    client = await logged_in(staff)

    response = await sync_to_async(client.post)(ANNOUNCE, {"apply": "1", "title": "Hi"})

    assert response.status_code == 403
    assert not await Notification.objects.aexists()


async def test_admin_pages_offer_both_ways_to_announce(admin_client):
    users = await sync_to_async(admin_client.get)(USERS)
    notifications = await sync_to_async(admin_client.get)("/admin/notifications/notification/")

    assert users.status_code == notifications.status_code == 200
    assert b"Send announcement to selected users" in users.content
    assert ANNOUNCE.encode() in notifications.content
