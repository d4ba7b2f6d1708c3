"""`Socket.assert_nothing` waits on a barrier frame, and it fails when something came first."""

import pytest
from asgiref.sync import sync_to_async

from conftest import token_for
from realtime.outbox import send_ephemeral_rollback_unsafe, user_group

pytestmark = pytest.mark.django_db(transaction=True)


async def test_assert_nothing_passes_once_its_barrier_arrives(amake_user, open_socket):
    alice = await amake_user("alice")
    socket = await open_socket(token=token_for(alice))
    await socket.assert_nothing()
    await socket.assert_nothing()  # a second barrier of its own, the first one long gone


async def test_assert_nothing_fails_on_a_frame_sent_before_the_barrier(amake_user, open_socket):
    alice = await amake_user("alice")
    socket = await open_socket(token=token_for(alice))
    await sync_to_async(send_ephemeral_rollback_unsafe)(
        [user_group(alice.id)],
        {"type": "typing_indicator", "sender_id": 1, "receiver_id": alice.id, "is_typing": True},
    )
    with pytest.raises(AssertionError, match=r"expected nothing, got \{'type': 'typing_indicator'"):
        await socket.assert_nothing()
