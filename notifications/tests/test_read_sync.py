"""Reading on one device clears the badge on the user's other devices (SPEC §5 notification_read)."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from conftest import authed_client, token_for
from notifications.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections():
    """The sync_to_async thread's connection would keep the test database from being dropped."""
    yield
    await sync_to_async(connections.close_all)()


async def post(user, path: str):
    return await sync_to_async(authed_client(user).post)(path)


@pytest.fixture
async def alice_two_devices(amake_user, open_socket):
    alice = await amake_user("alice")
    phone = await open_socket(token=token_for(alice))
    laptop = await open_socket(token=token_for(alice))
    return alice, phone, laptop


async def notify(user, title: str, *sockets) -> Notification:
    notification = await sync_to_async(Notification.objects.create)(user=user, title=title)
    for socket in sockets:
        await socket.receive_type("notification")
    return notification


async def test_read_over_rest_reaches_every_socket_of_the_user_once(alice_two_devices):
    alice, phone, laptop = alice_two_devices
    notification = await notify(alice, "hi", phone, laptop)

    assert (await post(alice, f"/api/notifications/{notification.id}/read/")).status_code == 200

    for socket in (phone, laptop):
        frame = await socket.receive_type("notification_read")
        assert frame["seq"] == 2
        assert frame["notification_ids"] == [notification.id]
        assert frame["timestamp"].endswith("Z")
        assert "all" not in frame

    assert (await post(alice, f"/api/notifications/{notification.id}/read/")).status_code == 200
    await phone.assert_nothing()
    await laptop.assert_nothing()


async def test_read_all_reaches_every_socket_of_the_user(alice_two_devices):
    alice, phone, laptop = alice_two_devices
    await notify(alice, "a", phone, laptop)
    await notify(alice, "b", phone, laptop)

    response = await post(alice, "/api/notifications/read-all/")
    assert response.json()["marked_read"] == 2

    for socket in (phone, laptop):
        frame = await socket.receive_type("notification_read")
        assert (frame["seq"], frame["all"]) == (3, True)

    await post(alice, "/api/notifications/read-all/")
    await phone.assert_nothing()


async def test_reading_another_users_notification_sends_nothing_to_anyone(
    alice_two_devices, amake_user, open_socket
):
    alice, phone, laptop = alice_two_devices
    mallory = await amake_user("mallory")
    mallory_socket = await open_socket(token=token_for(mallory))
    notification = await notify(alice, "private", phone, laptop)

    response = await post(mallory, f"/api/notifications/{notification.id}/read/")

    assert response.status_code == 404
    await phone.assert_nothing()
    await mallory_socket.assert_nothing()
    assert (await Notification.objects.aget(id=notification.id)).read_at is None
