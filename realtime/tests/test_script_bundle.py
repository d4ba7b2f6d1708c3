"""Several Lua scripts in one EVALSHA (realtime.redis_client.scripts_together)."""

from realtime.redis_client import ScriptCall, async_redis, rate_key, scripts_together
from testkit.counting import counting

ECHO = "return {#KEYS, unpack(ARGV)}"
GET_ALL = "local r = {} for i, k in ipairs(KEYS) do r[i] = redis.call('GET', k) or '-' end return r"


async def test_each_script_sees_only_its_own_keys_and_arguments():
    client = async_redis()
    first, second = rate_key("bundle-a"), rate_key("bundle-b")
    await client.set(first, "A", px=60_000)
    await client.set(second, "B", px=60_000)
    with counting() as costs:
        answers = await scripts_together(
            [
                ScriptCall(ECHO, [first], ["x", "y"]),
                ScriptCall(ECHO, [], []),
                ScriptCall(GET_ALL, [second, first, rate_key("bundle-none")], []),
                ScriptCall(ECHO, [first, second], ["z"]),
            ]
        )
    assert answers == [[1, b"x", b"y"], [0], [b"B", b"A", b"-"], [2, b"z"]]
    # one command (a SCRIPT LOAD and a retry only the first time Redis sees the bundle)
    assert costs.redis_commands in (["EVALSHA"], ["EVALSHA", "SCRIPT LOAD", "EVALSHA"])
    await client.delete(first, second)
