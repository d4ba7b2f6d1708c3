"""Moderation from Django admin: hiding messages (SPEC §5 `message_deleted`)."""

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from chat.models import ChatMessage
from chat.services import message_send
from conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def hide_through_admin(staff, message_ids):
    client = Client()
    client.force_login(staff)
    response = client.post(
        "/admin/chat/chatmessage/",
        {"action": "hide_messages", "_selected_action": [str(i) for i in message_ids]},
        follow=True,
    )
    assert response.status_code == 200
    assert "message(s) hidden" in response.content.decode()


async def test_hiding_a_message_tells_both_sides_and_hides_it(amake_user, open_socket):
    alice, bob, carol = (
        await amake_user("alice"),
        await amake_user("bob"),
        await amake_user("carol"),
    )
    staff = await amake_user("moderator", is_staff=True)
    await sync_to_async(
        lambda: staff.__class__.objects.filter(pk=staff.pk).update(is_superuser=True)
    )()
    await sync_to_async(staff.refresh_from_db)()
    bad = await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="spam")
    kept = await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="ok")
    alice_socket = await open_socket(token=token_for(alice), query="last_seq=2")
    bob_socket = await open_socket(token=token_for(bob), query="last_seq=2")
    carol_socket = await open_socket(token=token_for(carol))
    await alice_socket.receive_type("resumed")
    await bob_socket.receive_type("resumed")

    await hide_through_admin(staff, [bad.message_id])

    for socket in (alice_socket, bob_socket):
        frame = await socket.receive_type("message_deleted")
        assert frame == {"type": "message_deleted", "seq": 3, "message_id": bad.message_id}
    await carol_socket.assert_nothing()
    hidden = await sync_to_async(
        lambda: list(ChatMessage.objects.filter(is_hidden=True).values_list("id", flat=True))
    )()
    assert hidden == [bad.message_id]
    assert not (await sync_to_async(ChatMessage.objects.get)(id=kept.message_id)).is_hidden
    # hiding it again tells nobody anything new
    await hide_through_admin(staff, [bad.message_id])
    await alice_socket.assert_nothing()
    # receipts for a hidden message are refused
    await bob_socket.send({"type": "read_receipt", "message_id": bad.message_id})
    assert (await bob_socket.receive_type("error"))["code"] == "not_found"


async def test_the_admin_delete_action_is_the_senders_delete(amake_user, open_socket):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    staff = await amake_user("moderator", is_staff=True)
    await sync_to_async(
        lambda: staff.__class__.objects.filter(pk=staff.pk).update(is_superuser=True)
    )()
    bad = await sync_to_async(message_send)(sender_id=alice.id, receiver_id=bob.id, content="spam")
    bob_socket = await open_socket(token=token_for(bob), query="last_seq=1")
    await bob_socket.receive_type("resumed")

    @sync_to_async
    def delete_through_admin():
        client = Client()
        client.force_login(staff)
        response = client.post(
            "/admin/chat/chatmessage/",
            {"action": "delete_messages", "_selected_action": [str(bad.message_id)]},
            follow=True,
        )
        assert "1 message(s) deleted." in response.content.decode()
        # Rows are never deleted behind the clients' backs
        assert client.get("/admin/chat/chatmessage/").context["action_form"].fields[
            "action"
        ].choices == [
            ("", "---------"),
            ("hide_messages", "Hide selected messages (both sides are told)"),
            ("delete_messages", "Delete selected messages (text and files erased, everyone told)"),
        ]

    await delete_through_admin()

    frame = await bob_socket.receive_type("message_deleted")
    assert frame == {"type": "message_deleted", "seq": 2, "message_id": bad.message_id}
    stored = await sync_to_async(ChatMessage.objects.get)(id=bad.message_id)
    assert (stored.is_hidden, stored.content, stored.deleted_at is not None) == (True, "", True)
