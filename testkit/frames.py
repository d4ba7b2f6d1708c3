"""Every frame a server sends during the test suite, checked against docs/asyncapi.yaml.

A pytest plugin (loaded by the root conftest). It wraps the two socket clients
the tests use, channels' `WebsocketCommunicator` (in-process) and `websockets`
(real server processes), so every text frame a test receives is validated
against the schema of its `type` among the messages the document says the
server sends. A mismatch fails the test it happened in; the counts by type are
printed at the end of the session, so the document cannot drift from the code
unnoticed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, FormatChecker  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT7

ROOT = Path(__file__).resolve().parents[1]
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"
_BASE = "urn:qw:asyncapi"


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def server_message_refs(document: dict[str, Any]) -> list[str]:
    """The component messages of every `send` operation (the server → client frames)."""
    refs: list[str] = []
    for operation in document["operations"].values():
        if operation["action"] != "send":
            continue
        for message in operation["messages"]:
            ref = _resolve(document, message["$ref"])["$ref"]
            if ref not in refs:
                refs.append(ref)
    return refs


class FrameSchemas:
    """A validator per server frame `type`, built from the AsyncAPI document."""

    def __init__(self, document: dict[str, Any]) -> None:
        registry: Registry = Registry().with_resource(_BASE, DRAFT7.create_resource(document))
        self.validators: dict[str, Draft7Validator] = {}
        for ref in server_message_refs(document):
            frame_type = _resolve(document, ref)["payload"]["properties"]["type"]["const"]
            self.validators[frame_type] = Draft7Validator(
                {"$ref": f"{_BASE}{ref}/payload"},
                registry=registry,
                format_checker=FormatChecker(),
            )

    @classmethod
    def load(cls, path: Path = ASYNCAPI) -> FrameSchemas:
        return cls(yaml.safe_load(path.read_text()))

    @staticmethod
    def parse(text: str) -> dict[str, Any] | str:
        """The frame, or why it is not one (a JSON object with a string `type`)."""
        try:
            frame = json.loads(text)
        except ValueError:
            return f"not JSON: {text[:200]!r}"
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return f"not an object with a string type: {text[:200]}"
        return frame

    def problems(self, text: str, frame: dict[str, Any] | str | None = None) -> list[str]:
        """Why a frame the server sent does not match the document (empty: it does)."""
        frame = self.parse(text) if frame is None else frame
        if isinstance(frame, str):
            return [frame]
        validator = self.validators.get(frame["type"])
        if validator is None:
            return [f"no server message of type {frame['type']!r} in {ASYNCAPI.name}: {text[:200]}"]
        return [
            f"{frame['type']}: {'/'.join(map(str, error.absolute_path)) or '(frame)'}: "
            f"{error.message} in {text[:300]}"
            for error in validator.iter_errors(frame)
        ]


class FrameRecorder:
    def __init__(self, schemas: FrameSchemas) -> None:
        self.schemas = schemas
        self.counts: Counter[str] = Counter()
        self.mismatches: list[str] = []
        self.outside_protocol = 0
        # Frames the test harness itself sends through the server (conftest's barrier):
        # not part of the protocol, never checked, counted apart.
        self.harness_types: set[str] = set()
        self.harness = 0

    def check(self, text: str) -> None:
        frame = self.schemas.parse(text)
        if isinstance(frame, dict) and frame["type"] in self.harness_types:
            self.harness += 1
            return
        problems = self.schemas.problems(text, frame)
        if problems:
            self.mismatches.extend(problems)
        else:
            assert isinstance(frame, dict)
            self.counts[frame["type"]] += 1

    def take_mismatches(self) -> list[str]:
        taken, self.mismatches = self.mismatches, []
        return taken


recorder = FrameRecorder(FrameSchemas.load())


def _asgi_text(output: dict[str, Any]) -> str | None:
    """The text of a `websocket.send` the application handed to the communicator."""
    return output.get("text") if output.get("type") == "websocket.send" else None


def _websockets_text(message: str | bytes) -> str | None:
    return message if isinstance(message, str) else None


def _checking(recv: Callable[..., Any], text_of: Callable[[Any], str | None]) -> Callable[..., Any]:
    @wraps(recv)
    def receive(self: Any, *args: Any, **kwargs: Any) -> Any:
        received = recv(self, *args, **kwargs)
        if (text := text_of(received)) is not None:
            recorder.check(text)
        return received

    return receive


def _checking_async(
    recv: Callable[..., Awaitable[Any]], text_of: Callable[[Any], str | None]
) -> Callable[..., Awaitable[Any]]:
    @wraps(recv)
    async def receive(self: Any, *args: Any, **kwargs: Any) -> Any:
        received = await recv(self, *args, **kwargs)
        if (text := text_of(received)) is not None:
            recorder.check(text)
        return received

    return receive


@pytest.fixture(scope="session", autouse=True)
def _record_server_frames() -> Iterator[FrameRecorder]:
    from channels.testing import WebsocketCommunicator
    from websockets.asyncio.connection import Connection as AsyncConnection
    from websockets.sync.connection import Connection as SyncConnection

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            WebsocketCommunicator,
            "receive_output",
            _checking_async(WebsocketCommunicator.receive_output, _asgi_text),
        )
        patch.setattr(
            AsyncConnection, "recv", _checking_async(AsyncConnection.recv, _websockets_text)
        )
        patch.setattr(SyncConnection, "recv", _checking(SyncConnection.recv, _websockets_text))
        yield recorder


def _fail_on_mismatch(item: pytest.Item, when: str) -> None:
    mismatches = recorder.take_mismatches()
    if mismatches and item.get_closest_marker("frames_outside_protocol"):
        recorder.outside_protocol += len(mismatches)
    elif mismatches:
        pytest.fail(
            f"{len(mismatches)} server frame(s) {when} do not match {ASYNCAPI.name}:\n"
            + "\n".join(mismatches[:20]),
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield
    _fail_on_mismatch(item, "received by the test")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    result = yield
    _fail_on_mismatch(item, "received in setup")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    result = yield
    _fail_on_mismatch(item, "received in teardown")
    return result


# Under pytest-xdist every worker checks the frames it receives and hands its counts to
# the controller, which prints the sum: the summary covers the whole suite either way.
_WORKER_OUTPUT = "qw_frames"


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output[_WORKER_OUTPUT] = {
            "counts": dict(recorder.counts),
            "harness": recorder.harness,
            "outside_protocol": recorder.outside_protocol,
        }


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    worker = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if worker:
        recorder.counts.update(worker["counts"])
        recorder.harness += worker["harness"]
        recorder.outside_protocol += worker["outside_protocol"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    counts = recorder.counts
    if not counts:
        return
    terminalreporter.section(f"server frames validated against {ASYNCAPI.relative_to(ROOT)}")
    terminalreporter.write_line(f"{sum(counts.values())} frames of {len(counts)} types")
    for frame_type, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.write_line(f"  {frame_type:<20} {count}")
    if recorder.harness:
        terminalreporter.write_line(f"  harness frames, not checked: {recorder.harness}")
    if recorder.outside_protocol:
        terminalreporter.write_line(
            f"  not checked: {recorder.outside_protocol} (tests marked frames_outside_protocol)"
        )
    missing = sorted(set(recorder.schemas.validators) - set(counts))
    if missing:
        terminalreporter.write_line(f"  never seen: {', '.join(missing)}")
