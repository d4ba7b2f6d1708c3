"""Presence (SPEC §5 `presence`, §7 `/api/presence/`). Being written for issue 4."""

from rest_framework.decorators import api_view
from rest_framework.response import Response


async def connection_opened(consumer) -> None:
    return None


async def connection_alive(consumer) -> None:
    return None


async def connection_closed(consumer) -> None:
    return None


@api_view(["GET"])
def presence_view(request):
    return Response({"online": []})
