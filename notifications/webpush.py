"""Web Push (RFC 8030/8291/8292) through pywebpush and py-vapid: keys, validation, sending.

The send is blocking (requests) and runs on the worker's threads, never on a
server's event loop.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

logger = logging.getLogger(__name__)

KEY_FILE = "vapid-private-key.txt"
MAX_ENDPOINT_CHARS = 1024


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Strict base64url (padding optional); ValueError on anything else."""
    if not isinstance(text, str) or not text or any(c in text for c in "+/ \n"):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def generate_private_key() -> str:
    """A new key in QW_VAPID_PRIVATE_KEY's form: base64url of the raw 32-byte P-256 scalar."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64url(key.private_numbers().private_value.to_bytes(32, "big"))


def _embedded_default() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")


@functools.cache
def vapid() -> Vapid02 | None:
    """The server's VAPID key: QW_VAPID_PRIVATE_KEY, or in the embedded default a key
    generated once into QW_DATA_DIR; None (Web Push off) otherwise."""
    raw = settings.QW_VAPID_PRIVATE_KEY
    if not raw and _embedded_default():
        path = Path(settings.QW_DATA_DIR) / KEY_FILE
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(generate_private_key() + "\n")
            path.chmod(0o600)
            logger.info("generated a VAPID key into %s", path)
        raw = path.read_text().strip()
    if not raw:
        return None
    return Vapid02.from_raw(raw.encode())


def public_key() -> str | None:
    """The application server key browsers subscribe with: uncompressed P-256, base64url."""
    key = vapid()
    if key is None:
        return None
    return b64url(
        key.public_key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    )


# --- subscriptions: what a browser may register -----------------------------------
class SubscriptionInvalid(ValueError):
    """The field it is about, and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def check_endpoint(endpoint: str) -> None:
    """https:// to a public address (SPEC §10); QW_PUSH_ALLOW_LOCAL=1 allows http and
    loopback/private hosts for development and the tests' local push service."""
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise SubscriptionInvalid("endpoint", f"longer than {MAX_ENDPOINT_CHARS} characters")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise SubscriptionInvalid("endpoint", "not a URL") from None
    allowed_schemes = ("https", "http") if settings.QW_PUSH_ALLOW_LOCAL else ("https",)
    if parts.scheme not in allowed_schemes or not parts.hostname:
        raise SubscriptionInvalid("endpoint", "must be an https:// URL")
    if settings.QW_PUSH_ALLOW_LOCAL:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise SubscriptionInvalid("endpoint", "its host does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise SubscriptionInvalid("endpoint", "resolves to a loopback or private address")


def check_keys(p256dh: str, auth: str) -> None:
    """p256dh: an uncompressed point on P-256; auth: a 16-byte secret (RFC 8291)."""
    try:
        point = b64url_decode(p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        if len(point) != 65:
            raise ValueError("compressed")
    except (ValueError, TypeError):
        raise SubscriptionInvalid("p256dh", "not a base64url uncompressed P-256 point") from None
    try:
        secret = b64url_decode(auth)
    except (ValueError, TypeError):
        secret = b""
    if len(secret) != 16:
        raise SubscriptionInvalid("auth", "not a base64url 16-byte secret")


# --- sending -----------------------------------------------------------------
@dataclass(frozen=True)
class PushResult:
    status: int | None  # None: no answer (timeout, connection refused)

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """404/410: the subscription expired or was revoked; delete it."""
        return self.status in (404, 410)


_sessions = threading.local()


def _session() -> requests.Session:
    session = getattr(_sessions, "session", None)
    if session is None:
        session = _sessions.session = requests.Session()
    return session


def send(*, endpoint: str, p256dh: str, auth: str, payload: dict, topic: str) -> PushResult:
    """One encrypted push (aes128gcm) with a VAPID JWT, TTL and Topic; blocking, with a timeout."""
    key = vapid()
    assert key is not None, "Web Push is not configured"
    try:
        response = webpush(
            subscription_info={"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
            data=orjson.dumps(payload).decode(),
            vapid_private_key=key,
            # A fresh dict each time: pywebpush writes aud and exp into it.
            vapid_claims={"sub": settings.QW_VAPID_SUBJECT},
            content_encoding="aes128gcm",
            ttl=settings.QW_PUSH_TTL_SECONDS,
            # RFC 8030 §5.4: a newer push with the same Topic replaces an undelivered one.
            headers={"Topic": topic, "Urgency": "normal"},
            timeout=settings.QW_PUSH_TIMEOUT_SECONDS,
            requests_session=_session(),
        )
        return PushResult(response.status_code)
    except WebPushException as error:
        status = error.response.status_code if error.response is not None else None
        return PushResult(status)
    except requests.RequestException as error:
        logger.warning("push to %s failed: %s", urlsplit(endpoint).hostname, error)
        return PushResult(None)
