"""Property-based fuzzing of the WebSocket protocol over real sockets (issue 9).

hypothesis generates batches of hostile frames — random JSON values, every
client `type` with fields of the wrong type, integers past 64 bits, NaN and
Infinity literals, deep nesting, lone surrogates as JSON escapes, non-ASCII
digits, binary frames — and sends them to a real server process. Whatever
comes in, the properties hold: no `server_error`, no exception text in an
error, the socket still answers `ping`, and no traceback in the server log.
"""

from __future__ import annotations

import contextlib
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import token_for
from testkit.ws import RawClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

EXAMPLES = 200
FRAMES_PER_EXAMPLE = (50, 70)  # ≥ 10,000 frames per run
CLIENT_TYPES = [
    "ping",
    "heartbeat",
    "chat_message",
    "typing",
    "message_received",
    "read_receipt",
    "subscribe",
    "unsubscribe",
    "resume",
    "authenticate",
]
FIELDS = [
    "receiver_id",
    "room_id",
    "content",
    "client_msg_id",
    "is_typing",
    "message_id",
    "channel",
    "last_seq",
    "token",
    "attachment_ids",
]
LEAK_MARKERS = ("Traceback", "Error", "Exception", "psycopg", 'File "', "line ", "errno")

ODD_TEXT = st.text(
    alphabet=st.sampled_from(
        ["a", "0", "²", "①", "١", "٢", "𝟙", "\u0000", "\u202e", "\ufeff", "é", "😀", ":", " "]
    ),
    max_size=12,
) | st.text(max_size=20)
HOSTILE_INTS = st.sampled_from(
    [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 2**64 - 1]
) | st.integers(-(2**70), 2**70)
SCALARS = (
    st.none()
    | st.booleans()
    | HOSTILE_INTS
    | st.floats(allow_nan=False, allow_infinity=False)
    | ODD_TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ODD_TEXT, children, max_size=4)
    ),
    max_leaves=12,
)


def dumped(values: st.SearchStrategy) -> st.SearchStrategy:
    """JSON text of any size of integer, non-ASCII as escapes or raw."""
    return st.tuples(values, st.booleans()).map(
        lambda pair: json.dumps(pair[0], ensure_ascii=pair[1])
    )


def field_values(ids: list[int]) -> st.SearchStrategy:
    channels = st.builds(
        lambda kind, raw: f"{kind}:{raw}",
        st.sampled_from(["task", "project", "room", "user", "broadcast", ""]),
        ODD_TEXT | HOSTILE_INTS.map(str),
    )
    id_lists = st.lists(st.sampled_from(ids) | HOSTILE_INTS, max_size=12)  # attachment_ids
    return st.sampled_from(ids) | JSON_VALUES | channels | id_lists


def typed_frames(ids: list[int]) -> st.SearchStrategy:
    return dumped(
        st.builds(
            lambda frame_type, fields: {"type": frame_type, **fields},
            st.sampled_from(CLIENT_TYPES),
            st.dictionaries(st.sampled_from(FIELDS) | ODD_TEXT, field_values(ids), max_size=5),
        )
    )


def literal_frames(ids: list[int]) -> st.SearchStrategy:
    """Text that no JSON encoder writes: non-finite numbers, lone surrogates, deep nesting."""
    receiver = st.sampled_from(ids).map(str)
    return st.one_of(
        st.builds(
            lambda t, f, lit: f'{{"type": "{t}", "{f}": {lit}}}',
            st.sampled_from(CLIENT_TYPES),
            st.sampled_from(FIELDS),
            st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 400, "0x10"]),
        ),
        st.builds(
            lambda r, s: f'{{"type": "chat_message", "receiver_id": {r}, "content": "a{s}b"}}',
            receiver,
            st.sampled_from(["\\ud800", "\\udfff", "\\ud800\\ud800", "\\u0000", "\\uDBFF"]),
        ),
        st.builds(
            lambda s: f'{{"type": "subscribe", "channel": "task:{s}"}}',
            st.sampled_from(["\\ud800", "\\u00b2", "\\u2460", "\\u0661"]),
        ),
        st.integers(1, 5000).map(lambda depth: "[" * depth + "]" * depth),
        st.integers(1, 3000).map(
            lambda depth: '{"type":"ping","x":' + "[" * depth + "]" * depth + "}"
        ),
        st.text(max_size=40),
    )


def frames(ids: list[int]) -> st.SearchStrategy:
    one = st.one_of(
        typed_frames(ids),
        literal_frames(ids),
        dumped(JSON_VALUES),
        st.binary(max_size=64),
    )
    return st.lists(one, min_size=FRAMES_PER_EXAMPLE[0], max_size=FRAMES_PER_EXAMPLE[1])


def expected_pongs(batch: list[str | bytes]) -> int:
    """How many pongs the server owes: frames that orjson (the server's parser) reads as pings."""
    count = 0
    for frame in batch:
        if isinstance(frame, bytes):
            continue
        try:
            value = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict) and value.get("type") in ("ping", "heartbeat"):
            count += 1
    return count


def may_close(batch: list[str | bytes]) -> bool:
    """`authenticate` with a string token is answered by closing (4001/4002) when it is bad."""
    for frame in batch:
        if isinstance(frame, bytes):
            continue
        try:
            value = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        if (
            isinstance(value, dict)
            and value.get("type") == "authenticate"
            and isinstance(value.get("token"), str)
        ):
            return True
    return False


def check_answer(frame: dict) -> None:
    assert isinstance(frame.get("type"), str), frame
    if frame["type"] == "error":
        assert frame["code"] != "server_error", frame
        assert not any(marker in frame["message"] for marker in LEAK_MARKERS), frame


def test_hostile_frames_never_get_server_error_or_kill_the_socket(make_user, servers):
    alice, bob = make_user("alice"), make_user("bob")
    server = servers()
    url = f"{server.ws_url}?token={token_for(alice)}"
    ids = [alice.id, bob.id, 0, 1]
    state = {"ws": None, "frames": 0, "examples": 0}
    sockets = contextlib.ExitStack()

    def socket():
        if state["ws"] is None:
            state["ws"] = sockets.enter_context(connect(url, max_size=None, open_timeout=10))
            assert json.loads(state["ws"].recv(10))["type"] == "authenticated"
        return state["ws"]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=frames(ids))
    def batch_holds(batch: list[str | bytes]) -> None:
        ws = socket()
        owed = expected_pongs(batch) + 1
        try:
            for frame in batch:
                ws.send(frame)
            ws.send('{"type": "ping"}')
            while owed:
                answer = json.loads(ws.recv(30))
                check_answer(answer)
                owed -= answer["type"] == "pong"
        except ConnectionClosed as closed:
            state["ws"] = None
            assert may_close(batch) and closed.rcvd and closed.rcvd.code in (4001, 4002), (
                f"socket closed by {closed.rcvd}"
            )
        state["frames"] += len(batch) + 1
        state["examples"] += 1

    with sockets:
        batch_holds()
    print(f"socket fuzz: {state['examples']} examples, {state['frames']} frames")
    assert state["frames"] >= 10_000
    output = server.output()
    assert "Traceback" not in output, output[-5000:]
    assert "failed (incident" not in output, output[-5000:]


@pytest.mark.parametrize("server_name", ["uvicorn", "daphne"])
async def test_text_frame_that_is_not_utf8_closes_1007_without_a_traceback(
    amake_user, servers, server_name
):
    """RFC 6455 §8.1: invalid UTF-8 in a text frame fails the connection (1007)."""
    alice = await amake_user("alice")
    server = servers(QW_SERVER=server_name)
    client = await RawClient(f"{server.ws_url}?token={token_for(alice)}").connect()
    try:
        await client.send_text(b'{"type": "ping", "x": "\xff\xfe"}')
        assert RawClient.close_of(await client.read_frames())[0] == 1007
    finally:
        client.close()
    if server_name == "uvicorn":
        # uvicorn's own protocol logged a traceback before its 1007; ours, one line.
        server.wait_for_output("not valid UTF-8")
    assert "Traceback" not in server.output()
