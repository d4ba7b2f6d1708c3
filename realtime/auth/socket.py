"""Socket authentication: the JWT middleware and the Origin guard (SPEC §5)."""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.http.request import split_domain_port, validate_host
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.settings import api_settings

from realtime import registry
from realtime.auth.revocation import access_token_revoked_async
from realtime.auth.tokens import AccessToken
from realtime.db import run_db
from realtime.protocol import query_param
from realtime.selectors import active_users

logger = logging.getLogger("realtime.auth.socket")


@dataclass(frozen=True)
class SocketAuth:
    """What the middleware learned about a socket's token; the consumer acts on it."""

    user_id: int | None = None
    is_staff: bool = False
    expires_at: float | None = None  # unix time of the access token's `exp`
    issued_at: float | None = None  # the token's `iat`, for the revocation check
    close_code: int | None = None
    close_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.close_code is None


INVALID_TOKEN = SocketAuth(close_code=4001, close_reason="invalid_token")
TOKEN_EXPIRED = SocketAuth(close_code=4002, close_reason="token_expired")
USER_INACTIVE = SocketAuth(close_code=4003, close_reason="user_inactive")


def _active_user(user_id: object) -> tuple[int, bool] | None:
    return active_users().filter(pk=user_id).values_list("pk", "is_staff").first()


@dataclass(frozen=True)
class SocketSession:
    """What a new socket needs from the database once its token checked out."""

    is_staff: bool
    last_seq: int
    reads: dict[str, Any]  # what the apps asked for (registry.connect_reads), by name


# A user id no row has: compiled into the SQL once, replaced by the real id per connect.
_USER_PLACEHOLDER = -7_301_519_027


@functools.cache
def _session_statement(vendor: str) -> tuple[str, tuple[object, ...]]:
    """The connect's one statement, per database vendor: built and compiled once per process.

    Row tag 0 is the user (absent if unknown or inactive), is_staff as 0/1 and
    the inbox seq; tag k > 0 are the values of the k-th app read
    (registry.connect_reads). UNION ALL keeps it portable (the SQLite demo too).
    """
    from realtime.models import UserInbox

    users = get_user_model()._meta.db_table
    parts = [
        f"SELECT 0, CASE WHEN u.is_staff THEN 1 ELSE 0 END, COALESCE(i.last_seq, 0) FROM {users} u "
        f"LEFT JOIN {UserInbox._meta.db_table} i ON i.user_id = u.id "
        "WHERE u.id = %s AND u.is_active"
    ]
    params: list[object] = [_USER_PLACEHOLDER]
    for tag, read in enumerate(registry.connect_reads.values(), 1):
        sql, read_params = read.rows(_USER_PLACEHOLDER).query.sql_with_params()
        parts.append(f"SELECT {tag}, r.*, 0 FROM ({sql}) r")
        params.extend(read_params)
    return " UNION ALL ".join(parts), tuple(params)


def socket_session(user_id: int) -> SocketSession | None:
    """The active-user check, the inbox's seq and the apps' connect reads in one SQL statement.

    None for an unknown or inactive user (4003). The consumer calls it after
    joining the user's group, so an event committed after this read arrives live.
    """
    sql, template = _session_statement(connection.vendor)
    params = [user_id if param == _USER_PLACEHOLDER else param for param in template]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    user = next((row for row in rows if row[0] == 0), None)
    if user is None:
        return None
    values: dict[int, list[Any]] = defaultdict(list)
    for tag, value, _ in rows:
        if tag:
            values[tag].append(value)
    reads = {
        name: read.convert(user_id, values[tag])
        for tag, (name, read) in enumerate(registry.connect_reads.items(), 1)
    }
    return SocketSession(is_staff=bool(user[1]), last_seq=user[2], reads=reads)


def validate_access_token(raw: str | None) -> SocketAuth:
    """Signature, exp and type of an access token; no database (the consumer checks the user)."""
    if not raw:
        return INVALID_TOKEN
    try:
        token = AccessToken(raw)
    except ExpiredTokenError:
        return TOKEN_EXPIRED
    except TokenError:  # malformed, bad signature, a refresh token
        return INVALID_TOKEN
    user_id = token.get(api_settings.USER_ID_CLAIM)
    if user_id is None:
        return INVALID_TOKEN
    try:
        user_id = int(user_id)
    except (TypeError, ValueError):
        return INVALID_TOKEN
    return SocketAuth(user_id=user_id, expires_at=float(token["exp"]), issued_at=token.get("iat"))


async def revocation_checked(auth: SocketAuth) -> SocketAuth:
    """Refuse a token issued before the user's logout, deactivation or password change.

    One Redis GET; only a refused token costs a database read, so that a
    deactivated user still gets 4003 rather than 4001.
    """
    if not auth.ok or not await access_token_revoked_async(
        user_id=auth.user_id, issued_at=auth.issued_at
    ):
        return auth
    return INVALID_TOKEN if await run_db(_active_user)(auth.user_id) else USER_INACTIVE


async def authenticate_access_token(raw: str | None) -> SocketAuth:
    """Validate an access token (signature, exp, type) and look its user up."""
    auth = await revocation_checked(validate_access_token(raw))
    if not auth.ok:
        return auth
    row = await run_db(_active_user)(auth.user_id)
    if row is None:
        return USER_INACTIVE
    return SocketAuth(user_id=row[0], is_staff=row[1], expires_at=auth.expires_at)


def token_from_scope(scope: dict) -> tuple[str | None, bool]:
    """The token and whether it came as the `bearer, <token>` subprotocol pair."""
    subprotocols = list(scope.get("subprotocols") or [])
    if "bearer" in subprotocols:
        index = subprotocols.index("bearer")
        if index + 1 < len(subprotocols):
            return subprotocols[index + 1], True
        return None, True
    return query_param(scope, "token"), False


class JWTAuthMiddleware:
    """Puts a `SocketAuth` in `scope["auth"]`; never closes the socket itself.

    The consumer accepts and then closes with 4001/4002/4003 so that browsers
    see the code (a refused handshake only shows 1006).
    """

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        raw, via_subprotocol = token_from_scope(scope)
        # The user itself is checked by the consumer, after its group joins
        # (socket_session): one database trip per connect.
        scope["auth"] = await revocation_checked(validate_access_token(raw))
        scope["accept_subprotocol"] = "bearer" if via_subprotocol else None
        return await self.inner(scope, receive, send)


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def origin_allowed(origin: str | None, host: str | None) -> bool:
    """No Origin (a native client) passes; a browser Origin must be ours or listed."""
    if origin is None:
        return True
    allowed = settings.QW_ALLOWED_ORIGINS
    if "*" in allowed or origin in allowed:
        return True
    parsed = urlsplit(origin)
    return bool(host) and parsed.netloc.lower() == host.lower()


def host_allowed(host: str | None) -> bool:
    """ALLOWED_HOSTS, as Django applies it to HTTP requests.

    No Host header passes: autobahn refuses such a handshake before it gets
    here, so only in-process test sockets arrive without one.
    """
    if host is None:
        return True
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


class OriginGuard:
    """Refuses the handshake (HTTP 403) for a foreign Host or browser Origin (CSWSH).

    The Origin check trusts the Host header for "the server's own origin", so
    the Host must be one of ours first.
    """

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            host = _header(scope, b"host")
            if not host_allowed(host):
                logger.warning("websocket refused: host %s not allowed", host)
                return await WebsocketDenier()(scope, receive, send)
            if not origin_allowed(origin, host):
                logger.warning("websocket refused: origin %s not allowed for host %s", origin, host)
                return await WebsocketDenier()(scope, receive, send)
        return await self.inner(scope, receive, send)
