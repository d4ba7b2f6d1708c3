"""Hostile request heads on a raw socket, against both servers (issue 20, servers.request_head).

An over-long request line or header block is answered at once (414 / 431)
and closed; a head that never ends is answered 408 and closed within
QW_HEADER_TIMEOUT_SECONDS; a connection that sends nothing is closed. Each
refusal is one log line, never a traceback.
"""

import asyncio
import re

import pytest
from django.conf import settings

from conftest import token_for
from testkit import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

KIB = 1024
UPGRADE = (
    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.fixture(params=["uvicorn", "daphne"])
def server(request, servers):
    return servers(QW_SERVER=request.param)


def handshake(port: int, *, path: str = "/ws/", headers: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{UPGRADE}{headers}\r\n".encode()


async def answer_within(port: int, data: bytes, seconds: float) -> bytes:
    """Send `data` and read until the server closes the connection, which must happen in time."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(seconds):
            return await reader.read()
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def refusals(server, text: str) -> list[str]:
    return [
        line for line in server.output().splitlines() if "http refused" in line and text in line
    ]


async def test_over_long_request_lines_are_refused_at_once(server):
    for size in (10 * KIB, 20 * KIB):
        request = handshake(server.port, path=f"/ws/?token={'a' * size}")
        assert status_of(await answer_within(server.port, request, 1)) == 414
    # Log lines are written by a listener thread (quantumworks/logqueue.py): wait for each.
    eventually(lambda: len(refusals(server, "request line")) == 2, within=5, what="2 refusals")
    assert "Traceback" not in server.output()


async def test_over_long_header_blocks_are_refused_at_once(server):
    one_long_line = f"X-Long: {'b' * 9 * KIB}\r\n"
    too_many = "".join(f"X-H{n}: b\r\n" for n in range(200))
    too_big = "".join(f"X-H{n}: {'b' * KIB}\r\n" for n in range(100))
    for headers in (one_long_line, too_many, too_big):
        request = handshake(server.port, headers=headers)
        assert status_of(await answer_within(server.port, request, 1)) == 431
    eventually(lambda: len(refusals(server, "(431)")) == 3, within=5, what="3 refusals")
    assert "Traceback" not in server.output()


async def test_unfinished_headers_and_silent_connections_are_dropped_in_time(server):
    timeout = settings.QW_HEADER_TIMEOUT_SECONDS
    unfinished = f"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n".encode()
    # The deadline a client sees: the documented timeout, and a second for a loaded machine.
    answered, silent = await asyncio.gather(
        answer_within(server.port, unfinished, timeout + 1),
        answer_within(server.port, b"", timeout + 1),
    )
    assert status_of(answered) == 408
    assert silent == b""
    server.wait_for_output("http refused")
    assert len(refusals(server, "not complete")) == 1


async def test_a_head_sent_in_pieces_within_the_timeout_still_connects(server, amake_user):
    request = handshake(server.port, path=f"/ws/?token={token_for(await amake_user())}")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for piece in (request[:20], request[20:60]):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.5)
        writer.write(request[60:])
        async with asyncio.timeout(5):
            status_line = await reader.readline()
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 101 ")
    assert refusals(server, "") == []


async def test_kept_alive_and_pipelined_requests_are_still_served(server):
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    statuses = []
    try:
        async with asyncio.timeout(10):
            for data in (request, request, request + request):
                writer.write(data)
                for _ in range(data.count(b"GET ")):
                    head = await reader.readuntil(b"\r\n\r\n")
                    statuses.append(status_of(head))
                    length = re.search(rb"(?i)content-length: (\d+)", head)[1]
                    await reader.readexactly(int(length))
    finally:
        writer.close()
    assert statuses == [200, 200, 200, 200]
    assert refusals(server, "") == []
