"""The uvicorn server's keepalive rides on the heartbeat (issue 18, servers.ws_uvicorn).

Each heartbeat frame leaves with a WebSocket ping in the same write; a peer
whose ping is still unanswered at its next heartbeat is closed with 1011. A
peer that answers pings (every browser, Node `ws`, `websockets`) stays open
however long it sends nothing of its own.
"""

import asyncio

import pytest
from websockets.asyncio.client import connect

from conftest import token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HEARTBEAT_SECONDS = 0.5
PING = b"\x89\x05qw-hb"  # FIN + ping opcode, unmasked, the 5-byte payload
CLOSE_1011 = b"\x88"  # FIN + close opcode; its payload starts with the code


@pytest.fixture
def server(servers):
    return servers(QW_SERVER="uvicorn", QW_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS))


async def test_a_peer_that_never_answers_a_ping_is_closed_at_its_next_heartbeat(server, amake_user):
    token = token_for(await amake_user("silent"))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            f"GET /ws/?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await writer.drain()
        # Reads everything and answers nothing: EOF must come, bounded by a few
        # heartbeats (without the keepalive this peer would stay open for good).
        async with asyncio.timeout(20 * HEARTBEAT_SECONDS):
            received = await reader.read()
    finally:
        writer.close()
    assert received.startswith(b"HTTP/1.1 101"), received[:100]
    assert b'"type":"heartbeat"' in received
    assert PING in received
    close = received.rindex(CLOSE_1011)
    assert received[close + 2 : close + 4] == (1011).to_bytes(2, "big"), received[close:]


async def test_a_peer_that_answers_pings_stays_open_without_sending(server, amake_user):
    token = token_for(await amake_user("quiet"))
    # The client answers the server's pings and sends no ping or frame of its own.
    async with connect(f"{server.ws_url}?token={token}", ping_interval=None) as socket:
        beats = 0
        while beats < 6:  # six heartbeats: five pings answered, each checked at the next beat
            frame = await asyncio.wait_for(socket.recv(), timeout=10 * HEARTBEAT_SECONDS)
            beats += '"type":"heartbeat"' in frame
        assert socket.close_code is None
