"""What a heartbeat tick costs, pinned as counts (issue 18: the idle socket).

A tick beats every socket that is due at once: one frame text, one presence
script call for the batch (never one Redis command per socket) and one SQL
statement for the catch-up seqs, however many sockets the tick holds.
"""

import pytest

from conftest import token_for
from realtime import heartbeats
from testkit.counting import counting

pytestmark = pytest.mark.django_db(transaction=True)

SOCKETS = 5


async def test_a_tick_costs_one_statement_and_one_redis_command_for_all_its_sockets(
    amake_user, open_socket
):
    users = [await amake_user(f"idle{n}") for n in range(SOCKETS)]
    sockets = [await open_socket(token=token_for(user)) for user in users]
    for socket in sockets:  # a frame is handled after connect() is done (its presence touch)
        await socket.send({"type": "ping"})
        await socket.receive_type("pong")
    batch = [c for c in heartbeats.wheel().members if c.user_id in {u.id for u in users}]
    assert len(batch) == SOCKETS
    with counting() as costs:
        await heartbeats.beat(batch)
    for socket in sockets:
        assert (await socket.receive())["type"] == "heartbeat"
    assert costs.redis_commands == ["EVALSHA"], costs.redis_commands
    assert len(costs.queries) == 1, costs.queries
    assert costs.commits == 0
