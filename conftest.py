"""Shared fixtures: users, tokens, socket clients on the real Redis layer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from rest_framework.test import APIClient

from quantumworks.asgi import application
from realtime.auth.tokens import AccessToken
from realtime.db import close_db_thread_connections
from realtime.outbox import user_group
from realtime.publisher import publisher

PASSWORD = "correct-horse-battery"

# Every frame a test receives is checked against docs/asyncapi.yaml (SPEC §12).
pytest_plugins = ["testkit.frames"]


@pytest.fixture(scope="session", autouse=True)
def _close_db_threads_before_test_db_teardown(django_db_setup, django_db_blocker):
    yield
    close_db_thread_connections()
    # Connections opened by sync_to_async threads of finished tests belong to
    # contexts that no longer exist; end them so the test database can be dropped.
    with django_db_blocker.unblock():
        test_database = connections["default"].settings_dict["NAME"]
        if connections["default"].vendor != "postgresql" or not test_database.startswith("test_"):
            return
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [test_database],
            )


@pytest.fixture(scope="session", autouse=True)
def _flush_redis_after_session():
    yield
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(f"{settings.QW_CHANNEL_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def make_user(django_db_blocker):
    counter = {"n": 0}

    def make(username: str | None = None, *, is_active: bool = True, is_staff: bool = False):
        counter["n"] += 1
        return get_user_model().objects.create_user(
            username=username or f"user{counter['n']}",
            email=f"{username or counter['n']}@example.com",
            password=PASSWORD,
            is_active=is_active,
            is_staff=is_staff,
        )

    return make


@pytest.fixture
def amake_user(make_user):
    return sync_to_async(make_user)


def token_for(user) -> str:
    return str(AccessToken.for_user(user))


@pytest.fixture
def published():
    """Every (group, layer message) the publisher hands to the channel layer in the test.

    Without the barriers of `Socket.assert_nothing`: they belong to the test, not the code.
    """
    captured: list[tuple[str, dict]] = []

    def listener(messages: list[tuple[str, dict]]) -> None:
        captured.extend(item for item in messages if not item[1].get(BARRIER_KEY))

    publisher.listeners.append(listener)
    yield captured
    publisher.listeners.remove(listener)


@pytest.fixture
def servers():
    """Start real server processes (`python -m servers`); all stop at teardown."""
    from testkit.servers import ServerProcess

    started: list[ServerProcess] = []

    def start(**env) -> ServerProcess:
        server = ServerProcess(**env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def api_client():
    return APIClient()


def authed_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


_barrier_nonces = itertools.count(1)
BARRIER_KEY = "test_barrier"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with a `slow` test first, each module's tests in their own order.

    `make test` hands whole modules to two pytest-xdist workers (`--dist loadscope`,
    in this order): the long modules start early and the short ones fill in at
    the end, so neither worker is left alone with a long module.
    """
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


def pytest_configure(config: pytest.Config) -> None:
    # The barrier is the harness's own frame, not the protocol's: the frame check skips it.
    from testkit.frames import recorder

    recorder.harness_types.add(BARRIER_KEY)


class Socket:
    """A WebsocketCommunicator speaking JSON frames, with helpers for tests.

    Frames of different types may interleave (an ack and the event it caused
    travel different paths), so `receive_type` keeps frames of other types in
    a backlog for later calls; frames of one type keep their order.
    """

    # A barrier reaches every socket of its user: another socket's is noise here.
    NOISE = frozenset({"heartbeat", "presence", BARRIER_KEY})

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.backlog: list[dict] = []

    async def send(self, frame: dict | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.communicator.send_input({"type": "websocket.receive", "text": text})

    async def _read(self, timeout: float) -> dict:
        output = await self.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            raise AssertionError(f"socket closed with {output.get('code')}")
        return json.loads(output["text"])

    async def receive(self, timeout: float = 3) -> dict:
        if self.backlog:
            return self.backlog.pop(0)
        return await self._read(timeout)

    async def receive_type(self, frame_type: str, timeout: float = 3) -> dict:
        """The next frame of a type; other frames wait in the backlog."""
        for index, frame in enumerate(self.backlog):
            if frame["type"] == frame_type:
                return self.backlog.pop(index)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {frame_type} frame; backlog: {self.backlog}")
            try:
                frame = await self._read(remaining)
            except TimeoutError:
                raise AssertionError(f"no {frame_type} frame; backlog: {self.backlog}") from None
            if frame["type"] == frame_type:
                return frame
            if frame["type"] not in self.NOISE:
                self.backlog.append(frame)

    async def receive_all(self, frame_type: str, count: int, timeout: float = 5) -> list[dict]:
        return [await self.receive_type(frame_type, timeout) for _ in range(count)]

    async def assert_nothing(self, *, heartbeats: int = 0, timeout: float = 5) -> None:
        """Nothing but noise arrives before a barrier frame proves that it would have.

        The barrier is an ephemeral frame published to this socket's user after
        the action, by the same path as every event (publisher, one Redis
        connection, the consumer): a frame the action wrongly caused arrives
        first. With `heartbeats`, also wait for that many heartbeat frames: the
        catch-up of beat N runs before beat N+1 is sent, so a duplicate it sent
        would arrive first too.
        """
        pending = [frame for frame in self.backlog if frame["type"] not in self.NOISE]
        assert not pending, f"expected nothing, got {pending}"
        barrier = {"type": BARRIER_KEY, "nonce": next(_barrier_nonces)}
        message = {"type": "ephemeral.frame", "text": json.dumps(barrier), BARRIER_KEY: True}
        await sync_to_async(publisher.publish)([(user_group(self.hello["user_id"]), message)])
        seen_barrier, beats = False, 0
        while not seen_barrier or beats < heartbeats:
            frame = await self._read(timeout)
            if frame == barrier:
                seen_barrier = True
            elif frame["type"] == "heartbeat":
                beats += 1
            elif frame["type"] not in self.NOISE:
                raise AssertionError(f"expected nothing, got {frame}")

    async def assert_quiet_for(self, seconds: float) -> None:
        """Nothing but noise for `seconds`: only where the passage of time is the point
        (a timer that must not fire); `assert_nothing` for anything a message could cause."""
        pending = [frame for frame in self.backlog if frame["type"] not in self.NOISE]
        assert not pending, f"expected nothing, got {pending}"
        timeout = seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if await self.communicator.receive_nothing(deadline - loop.time()):
                return
            frame = await self._read(0.1)
            if frame.get("type") not in self.NOISE:
                raise AssertionError(f"expected nothing, got {frame}")

    async def close_code(self, timeout: float = 3) -> int:
        while True:
            output = await self.communicator.receive_output(timeout)
            if output["type"] == "websocket.close":
                return output.get("code", 1000)


@pytest.fixture
async def open_socket() -> AsyncIterator:
    """Open sockets on the real ASGI application; all are disconnected at teardown."""
    communicators: list[WebsocketCommunicator] = []

    async def connect(
        *,
        token: str | None = None,
        query: str = "",
        subprotocols: list[str] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        expect_auth: bool = True,
    ) -> Socket:
        params = []
        if token is not None:
            params.append(f"token={token}")
        if query:
            params.append(query)
        path = "/ws/" + ("?" + "&".join(params) if params else "")
        communicator = WebsocketCommunicator(
            application, path, headers=headers or [], subprotocols=subprotocols
        )
        communicators.append(communicator)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        socket = Socket(communicator)
        socket.subprotocol = _
        if expect_auth:
            socket.hello = await socket.receive_type("authenticated")
        return socket

    yield connect
    for communicator in communicators:
        with contextlib.suppress(Exception):
            await communicator.disconnect(timeout=2)
    await sync_to_async(connections.close_all)()
