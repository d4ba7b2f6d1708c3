"""A created notification reaches every socket of its user, after commit only (SPEC §4, §5)."""

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction

from conftest import token_for
from notifications.models import Notification
from notifications.services import notifications_create_bulk
from realtime.frames import iso
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_sync_thread_connections():
    """The sync_to_async thread's connection would keep the test database from being dropped."""
    yield
    await sync_to_async(connections.close_all)()


async def test_created_notification_reaches_every_socket_of_its_user_and_nobody_else(
    amake_user, open_socket
):
    alice = await amake_user("alice")
    bob = await amake_user("bob")
    phone = await open_socket(token=token_for(alice))
    laptop = await open_socket(token=token_for(alice))
    bystander = await open_socket(token=token_for(bob))

    notification = await sync_to_async(Notification.objects.create)(
        user=alice,
        notification_type="task_assigned",
        title="New task",
        message="You were assigned “Logo”",
        link="/tasks/7",
    )

    expected = {
        "type": "notification",
        "seq": 1,
        "notification_id": notification.id,
        "notification_type": "task_assigned",
        "title": "New task",
        "message": "You were assigned “Logo”",
        "link": "/tasks/7",
        "created_at": iso(notification.created_at),
    }
    assert await phone.receive_type("notification") == expected
    assert await laptop.receive_type("notification") == expected
    await bystander.assert_nothing()


async def test_notification_created_in_a_transaction_is_published_only_on_commit(
    amake_user, published
):
    alice = await amake_user("alice")

    def create_then_look() -> list:
        with transaction.atomic():
            Notification.objects.create(user=alice, title="Hello")
            seen_before_commit = list(published)
        return seen_before_commit

    assert await sync_to_async(create_then_look)() == []
    assert [group for group, _ in published] == [f"user.{alice.id}"]


async def test_rolled_back_notification_is_never_published(amake_user, open_socket, published):
    alice = await amake_user("alice")
    socket = await open_socket(token=token_for(alice))

    def create_and_fail() -> None:
        with transaction.atomic():
            Notification.objects.create(user=alice, title="Never")
            raise RuntimeError("the caller's change failed")

    with pytest.raises(RuntimeError):
        await sync_to_async(create_and_fail)()

    await socket.assert_nothing()
    assert published == []
    assert await Notification.objects.filter(user=alice).acount() == 0
    assert await Event.objects.filter(user=alice).acount() == 0

    # The rolled-back event used no seq: the next one is still 1.
    await sync_to_async(Notification.objects.create)(user=alice, title="Real")
    frame = await socket.receive_type("notification")
    assert (frame["seq"], frame["title"]) == (1, "Real")


async def test_bulk_created_notifications_reach_each_user_with_their_own_id(
    amake_user, open_socket
):
    alice = await amake_user("alice")
    bob = await amake_user("bob")
    carol = await amake_user("carol")
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    carol_socket = await open_socket(token=token_for(carol))

    created = await sync_to_async(notifications_create_bulk)(
        user_ids=[alice.id, bob.id, alice.id],
        notification_type="task_status",
        title="Task moved to review",
        link="/tasks/3",
    )

    assert created == 2
    stored = {
        n.user_id: n
        async for n in Notification.objects.filter(user__in=[alice, bob, carol]).order_by("id")
    }
    assert set(stored) == {alice.id, bob.id}
    for user, socket in [(alice, alice_socket), (bob, bob_socket)]:
        frame = await socket.receive_type("notification")
        assert frame == {
            "type": "notification",
            "seq": 1,
            "notification_id": stored[user.id].id,
            "notification_type": "task_status",
            "title": "Task moved to review",
            "message": "",
            "link": "/tasks/3",
            "created_at": iso(stored[user.id].created_at),
        }
        await socket.assert_nothing()
    await carol_socket.assert_nothing()


async def test_notification_missed_while_offline_is_replayed_on_resume(amake_user, open_socket):
    alice = await amake_user("alice")
    first = await open_socket(token=token_for(alice))
    await sync_to_async(Notification.objects.create)(user=alice, title="Seen")
    await first.receive_type("notification")
    await first.communicator.disconnect()

    missed = await sync_to_async(Notification.objects.create)(user=alice, title="Missed")

    again = await open_socket(token=token_for(alice), query="last_seq=1")
    frame = await again.receive_type("notification")
    assert (frame["seq"], frame["notification_id"]) == (2, missed.id)
    assert await again.receive_type("resumed") == {"type": "resumed", "last_seq": 2, "count": 1}
