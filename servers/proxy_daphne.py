"""The real client address behind a reverse proxy, trusted from the proxy only.

daphne's own X-Forwarded-For support believes the header from any peer and
takes its *first* entry, which the client writes itself. Here the header
counts only when the TCP peer is in QW_TRUSTED_PROXIES, and the client is the
right-most entry that is not itself a trusted proxy (nginx appends the address
it saw, so everything left of that may be forged).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def _is_trusted(address: str, networks: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_client(
    peer: str | None,
    forwarded_for: str | None,
    forwarded_proto: str | None,
    *,
    networks: list[Network],
) -> tuple[str | None, str | None]:
    """(client address, scheme) to believe; (peer, None) when the peer is not a trusted proxy."""
    if peer is None or not forwarded_for or not _is_trusted(peer, networks):
        return peer, None
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        client = hop
        if not _is_trusted(hop, networks):
            break
    scheme = forwarded_proto.strip().lower() if forwarded_proto else None
    return client, scheme if scheme in {"http", "https"} else None


def install_daphne_parser(networks: list[Network]) -> None:
    """Make daphne's HTTP and WebSocket protocols use `forwarded_client` for scope["client"]."""
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
            peer, first(address_header), first(proto_header), networks=networks
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
