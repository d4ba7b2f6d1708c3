"""Presence (SPEC §5 `presence`, §7 `/api/presence/`). Filled in by issue 4."""


async def connection_opened(consumer) -> None:
    return None


async def connection_alive(consumer) -> None:
    return None


async def connection_closed(consumer) -> None:
    return None
