"""redis-py's asyncio connection, minus a task per command sent.

With a `socket_timeout` (ours: 5 s for the counters, 30 s for the layer),
redis-py wraps every send in `asyncio.wait_for`, which on Python 3.11 creates
and schedules a task per command (the W1 profile of issue 18: `wait_for` and
`ensure_future` under every GET, SUBSCRIBE and EVALSHA of a connect). The
write itself never waits unless the transport's buffer is full; here the
same timeout bounds the drain with `asyncio.timeout`, a timer and no task.
Errors are handled as redis-py does: the connection is dropped and a
`TimeoutError` or `ConnectionError` raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from redis import exceptions
from redis.asyncio.connection import Connection


class TasklessConnection(Connection):
    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        writer = self._writer
        assert writer is not None  # connected above
        try:
            writer.writelines(command)
            async with asyncio.timeout(self.socket_timeout):
                await writer.drain()
        except TimeoutError as error:  # before OSError, its base class
            await self.disconnect(nowait=True)
            raise exceptions.TimeoutError("Timeout writing to socket") from error
        except OSError as error:
            await self.disconnect(nowait=True)
            number, message = ("UNKNOWN", error.args[0]) if len(error.args) == 1 else error.args[:2]
            raise exceptions.ConnectionError(
                f"Error {number} while writing to socket. {message}."
            ) from error
        except BaseException:
            # A send cut off midway leaves the stream in an unknown state.
            await self.disconnect(nowait=True)
            raise
