"""daphne's shim: the client address behind a reverse proxy, by uvicorn's rule.

daphne's own X-Forwarded-For support believes the header from any peer and
takes its *first* entry, which the client writes itself. uvicorn's
`ProxyHeadersMiddleware` (which the uvicorn flavour runs) believes it only
from QW_TRUSTED_PROXIES and takes the right-most entry that is not itself a
trusted proxy (nginx appends the address it saw, so everything left of that
may be forged). daphne reads the address in its protocols, for its access log
as well as the scope, so this shim replaces daphne's parser with one that asks
that same middleware.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware


def forwarded_client(
    peer: str | None,
    forwarded_for: str | None,
    forwarded_proto: str | None,
    *,
    trusted: Sequence[str],
) -> tuple[str | None, str | None]:
    """(client address, scheme) to believe; (peer, None) when the peer is not a trusted proxy."""
    headers = [
        (name, value.encode("latin-1"))
        for name, value in (
            (b"x-forwarded-for", forwarded_for),
            (b"x-forwarded-proto", forwarded_proto),
        )
        if value is not None
    ]
    scope: dict[str, Any] = {"type": "http", "client": (peer, 0), "headers": headers}

    async def keep(believed: dict[str, Any], receive: Any, send: Any) -> None:
        scope.update(believed)

    # The middleware and `keep` never suspend: one step runs the whole call.
    call = ProxyHeadersMiddleware(keep, trusted_hosts=list(trusted))(scope, None, None)  # type: ignore[arg-type]
    try:
        call.send(None)
    except StopIteration:
        pass
    else:  # pragma: no cover - only if a uvicorn upgrade makes the middleware await
        call.close()
        raise RuntimeError("ProxyHeadersMiddleware suspended")
    return scope["client"][0], scope.get("scheme")


def install_daphne_parser(trusted: Sequence[str]) -> None:
    """Make daphne's HTTP and WebSocket protocols use `forwarded_client` for the client address."""
    import daphne.http_protocol
    import daphne.ws_protocol

    def parse(headers, address_header, port_header, proto_header, original_addr, scheme=None):
        raw = {name.lower(): values for name, values in dict(_header_items(headers)).items()}

        def first(name: str) -> str | None:
            values = raw.get(name.lower().encode())
            if not values:
                return None
            value = values[0] if isinstance(values, list) else values
            return value.decode("latin-1")

        peer = original_addr[0] if original_addr else None
        client, forwarded_scheme = forwarded_client(
            peer, first(address_header), first(proto_header), trusted=trusted
        )
        if client == peer:
            return original_addr, forwarded_scheme or scheme
        return [client, 0], forwarded_scheme or scheme

    daphne.http_protocol.parse_x_forwarded_for = parse
    daphne.ws_protocol.parse_x_forwarded_for = parse


def _header_items(headers):
    from twisted.web.http_headers import Headers

    if isinstance(headers, Headers):
        return headers.getAllRawHeaders()
    return headers.items()
