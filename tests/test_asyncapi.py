"""docs/asyncapi.yaml and the check of every frame the suite receives (SPEC §12)."""

from __future__ import annotations

import json

import pytest

from conftest import token_for
from testkit import frames
from testkit.frames import FrameSchemas, recorder

SERVER_FRAMES = {
    # SPEC §5
    "authenticated",
    "chat_message",
    "message_sent",
    "message_status",
    "message_deleted",
    "notification",
    "notification_read",
    "task_status_update",
    "typing_indicator",
    "presence",
    "subscribed",
    "unsubscribed",
    "resumed",
    "resync_required",
    "heartbeat",
    "pong",
    "error",
    # SPEC §11
    "message_updated",
    "conversation_read",
}

CHAT_MESSAGE = {
    "type": "chat_message",
    "seq": 4,
    "message_id": 17,
    "sender_id": 1,
    "room_id": 3,
    "content": "hi @bob",
    "timestamp": "2026-12-06T00:00:00Z",
    "client_msg_id": "c-1",
    "attachments": [
        {"id": 5, "name": "a.png", "size": 10, "content_type": "image/png", "url": "/a/5?sig=x"}
    ],
    "mentions": [2],
}


@pytest.fixture(scope="module")
def schemas() -> FrameSchemas:
    return FrameSchemas.load()


def problems(schemas: FrameSchemas, frame: dict) -> list[str]:
    return schemas.problems(json.dumps(frame))


def test_every_server_frame_of_the_spec_has_a_schema(schemas):
    assert set(schemas.validators) == SERVER_FRAMES


def test_frames_of_sections_10_and_11_validate(schemas):
    assert problems(schemas, CHAT_MESSAGE) == []
    updated = {
        "type": "message_updated",
        "seq": 5,
        "message_id": 17,
        "content": "hi @bob!",
        "edited_at": "2026-12-06T00:01:00Z",
        "mentions": [2],
    }
    read = {"type": "conversation_read", "seq": 6, "room": 3, "last_read_message_id": 17}
    mention = {
        "type": "notification",
        "seq": 7,
        "notification_id": 9,
        "notification_type": "mention",
        "title": "alice mentioned you",
        "message": "hi @bob",
        "link": "/chat/?room=3",
        "created_at": "2026-12-06T00:00:00Z",
    }
    assert [problems(schemas, frame) for frame in (updated, read, mention)] == [[], [], []]


def test_a_frame_that_breaks_its_schema_is_named_with_the_field(schemas):
    both_targets = {**CHAT_MESSAGE, "receiver_id": 2}
    assert problems(schemas, both_targets) == [
        f"chat_message: (frame): {both_targets!r} is not valid under any of the given schemas "
        f"in {json.dumps(both_targets)[:300]}"
    ]
    ack = {"type": "message_sent", "message_id": 1, "client_msg_id": None, "timestamp": "now"}
    assert problems(schemas, ack) == [
        f"message_sent: (frame): 'duplicate' is a required property in {json.dumps(ack)}",
        f"message_sent: timestamp: 'now' is not a 'date-time' in {json.dumps(ack)}",
    ]
    extra = {"type": "pong", "timestamp": "2026-12-06T00:00:00Z", "debug": 1}
    assert problems(schemas, extra) == [
        "pong: (frame): Additional properties are not allowed ('debug' was unexpected) "
        f"in {json.dumps(extra)}"
    ]


def test_unknown_types_and_non_objects_are_mismatches(schemas):
    assert schemas.problems('{"type": "ping"}') == [
        'no server message of type \'ping\' in asyncapi.yaml: {"type": "ping"}'
    ]
    assert schemas.problems("[1]") == ["not an object with a string type: [1]"]
    assert schemas.problems("{nope") == ["not JSON: '{nope'"]


@pytest.mark.django_db(transaction=True)
async def test_frames_a_test_receives_are_counted_and_a_mismatch_fails_it(amake_user, open_socket):
    before = recorder.counts["authenticated"], recorder.counts["pong"]
    socket = await open_socket(token=token_for(await amake_user("alice")))
    await socket.send({"type": "ping"})
    await socket.receive_type("pong")
    assert (recorder.counts["authenticated"], recorder.counts["pong"]) == (
        before[0] + 1,
        before[1] + 1,
    )

    harness = recorder.harness
    recorder.check('{"type": "test_barrier", "nonce": 0}')  # conftest's barrier: not checked
    assert (recorder.harness, recorder.take_mismatches()) == (harness + 1, [])

    recorder.check('{"type": "pong"}')
    with pytest.raises(pytest.fail.Exception, match="'timestamp' is a required property"):
        frames._fail_on_mismatch(_Item(), "received by the test")
    assert recorder.take_mismatches() == []


class _Item:
    """What _fail_on_mismatch reads of a test item: an unmarked test."""

    def get_closest_marker(self, name: str) -> None:
        return None


def test_under_xdist_the_controller_prints_the_sum_of_every_workers_frames(monkeypatch):
    """A worker hands its counts over at the end of its session; the controller adds them up."""
    workers = []
    for counts, harness in (({"pong": 2, "authenticated": 1}, 3), ({"pong": 5}, 0)):
        worker = frames.FrameRecorder(recorder.schemas)
        worker.counts.update(counts)
        worker.harness, worker.outside_protocol = harness, 1
        session = _Session(workeroutput={})
        monkeypatch.setattr(frames, "recorder", worker)
        frames.pytest_sessionfinish(session)
        workers.append(_Node(workeroutput=session.config.workeroutput))

    controller = frames.FrameRecorder(recorder.schemas)
    monkeypatch.setattr(frames, "recorder", controller)
    frames.pytest_sessionfinish(_Session())  # the controller has no workeroutput: nothing to hand
    for node in workers:
        frames.pytest_testnodedown(node, None)
    assert (dict(controller.counts), controller.harness, controller.outside_protocol) == (
        {"pong": 7, "authenticated": 1},
        3,
        2,
    )


class _Session:
    def __init__(self, **config) -> None:
        self.config = type("Config", (), config)()


class _Node:
    def __init__(self, workeroutput: dict) -> None:
        self.workeroutput = workeroutput
