"""An app plugs into the core through realtime.registry alone (issue 10)."""

import pytest

from conftest import token_for
from realtime import registry
from realtime.outbox import send_ephemeral_rollback_unsafe

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def probe_kind():
    """A subscription kind registered the way an app's ready() does it."""
    registry.register_subscription_kind(
        "probe",
        group=lambda probe_id: f"probe.{probe_id}",
        can_subscribe=lambda user_id, is_staff, probe_id: probe_id == 7,
    )
    yield
    del registry.subscription_kinds["probe"]


# The probe kind and its frame exist only in this test: they are not part of the protocol.
@pytest.mark.frames_outside_protocol
async def test_a_registered_subscription_kind_is_subscribable(probe_kind, amake_user, open_socket):
    socket = await open_socket(token=token_for(await amake_user("alice")))

    await socket.send({"type": "subscribe", "channel": "probe:7"})
    assert await socket.receive_type("subscribed") == {"type": "subscribed", "channel": "probe:7"}
    send_ephemeral_rollback_unsafe(["probe.7"], {"type": "probe_update", "probe_id": 7})
    assert await socket.receive_type("probe_update") == {"type": "probe_update", "probe_id": 7}

    await socket.send({"type": "unsubscribe", "channel": "probe:7"})
    await socket.receive_type("unsubscribed")


@pytest.mark.parametrize("channel", ["probe:8", "unregistered:7"])
async def test_a_refused_or_unknown_kind_is_forbidden(probe_kind, amake_user, open_socket, channel):
    socket = await open_socket(token=token_for(await amake_user("alice")))

    await socket.send({"type": "subscribe", "channel": channel})
    error = await socket.receive_type("error")

    assert error["code"] == "forbidden"


def test_every_app_registered_its_entries():
    assert {"task", "project", "room"} <= registry.subscription_kinds.keys()
    assert {"chat_message", "typing", "ping", "subscribe"} <= registry.frame_handlers.keys()
    assert {"chat_message", "notification", "task_status_update"} <= registry.durable_event_types
    assert registry.socket_opened and registry.socket_alive and registry.socket_closed
