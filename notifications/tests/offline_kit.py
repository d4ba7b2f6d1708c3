"""Real counterparts for the offline-delivery tests: an SMTP server and a Web Push service.

- `SmtpSink`: aiosmtpd on a free localhost port; the worker's SMTP backend
  talks to it exactly as to a mail relay.
- `PushService`: an HTTP server on localhost doing what a push service does
  with a request (RFC 8030/8291/8292): it checks the VAPID JWT's ES256
  signature against the public key the application publishes, its `aud`,
  `exp` and `sub`, the `TTL` header, and decrypts the `aes128gcm` body with the
  subscription's private key, as the browser would. It answers 201, 410, 500,
  or holds the request open, as the test asks.
- `BrowserKeys`: a subscription's key pair and auth secret, made like a browser's.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
from aiosmtpd.controller import Controller
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from conftest import authed_client
from testkit.infra import free_port
from testkit.waiting import eventually as testkit_eventually


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# The test kit's one wait, with the deadline these tests use unless they say otherwise.
eventually = functools.partial(testkit_eventually, within=15)


def send_over_rest(sender, receiver, content: str) -> int:
    """A 1:1 message as a client sends it (REST); its id."""
    response = authed_client(sender).post(
        "/api/chat/messages/", {"receiver_id": receiver.id, "content": content}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["message_id"]


# --- SMTP ----------------------------------------------------------------------------
class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


# --- Web Push ----------------------------------------------------------------------
@dataclass
class BrowserKeys:
    """What `pushManager.subscribe()` makes: a P-256 key pair and a 16-byte auth secret."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def subscription(self, endpoint: str) -> dict:
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }


@dataclass
class Delivery:
    """A push the service accepted (answered 201 to)."""

    token: str
    payload: dict
    headers: dict[str, str]
    accepted_at: float


class PushService:
    """A push service on localhost; `endpoint(token)` is a subscription's URL."""

    def __init__(self, *, vapid_public_key: str, subject: str) -> None:
        self.vapid_public_key = vapid_public_key
        self.subject = subject
        self.keys: dict[str, BrowserKeys] = {}
        # token → what to answer next: an int status, or "hang" (hold until released)
        self.script: dict[str, deque] = defaultdict(deque)
        self.default = 201
        self.delivered: list[Delivery] = []
        self.answered: list[tuple[str, int]] = []  # every (token, status) answered
        self.refused: list[str] = []  # why a request was refused (bad VAPID, bad body)
        self.hanging: set[str] = set()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.port = free_port()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                service._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> PushService:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def subscribe(self, token: str) -> dict:
        """A new browser subscription (keys made here, kept to decrypt its pushes)."""
        keys = self.keys[token] = BrowserKeys()
        return keys.subscription(f"{self.origin}/push/{token}")

    def answer(self, token: str, *statuses) -> None:
        self.script[token].extend(statuses)

    def delivered_to(self, token: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.delivered if d.token == token]

    # --- one request ------------------------------------------------------------
    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        token = request.path.rsplit("/", 1)[-1]
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = {key.lower(): value for key, value in request.headers.items()}
        problem = self._check(token, headers)
        payload = None
        if problem is None:
            try:
                keys = self.keys[token]
                plain = http_ece.decrypt(
                    body, private_key=keys.private_key, auth_secret=keys.auth, version="aes128gcm"
                )
                payload = json.loads(plain)
            except Exception as error:
                problem = f"cannot decrypt: {error!r}"
        if problem is not None:
            with self.lock:
                self.refused.append(problem)
            self._reply(request, token, 400)
            return
        with self.lock:
            action = self.script[token].popleft() if self.script[token] else self.default
        if action == "hang":
            with self.lock:
                self.hanging.add(f"{token}:{payload['body']}")
            self.release.wait(60)
            with self.lock:
                self.hanging.discard(f"{token}:{payload['body']}")
            self._reply(request, token, 503)  # never counted as delivered
            return
        # A 201 is recorded before it is sent, as a push service stores a message before it
        # accepts it: the sender deletes its pending row on the 201, and a test that waits for
        # no pending rows must then find every delivery here (recording after the reply raced).
        delivery = Delivery(token, payload, headers, time.time()) if action == 201 else None
        self._reply(request, token, action, delivery)

    def _reply(
        self,
        request: BaseHTTPRequestHandler,
        token: str,
        status: int,
        delivery: Delivery | None = None,
    ) -> None:
        with self.lock:
            self.answered.append((token, status))
            if delivery is not None:
                self.delivered.append(delivery)
        try:
            request.send_response(status)
            request.send_header("Content-Length", "0")
            request.end_headers()
        except OSError:
            pass  # the sender gave up (timeout) or died

    def _check(self, token: str, headers: dict[str, str]) -> str | None:
        """RFC 8292 VAPID and RFC 8030 headers, as a push service checks them."""
        if token not in self.keys:
            return "unknown subscription"
        if headers.get("content-encoding") != "aes128gcm":
            return f"content-encoding {headers.get('content-encoding')}"
        if not headers.get("ttl", "").isdigit():
            return "no TTL"
        scheme, _, params = headers.get("authorization", "").partition(" ")
        if scheme != "vapid":
            return "no vapid authorization"
        parts = dict(part.strip().split("=", 1) for part in params.split(","))
        if parts.get("k") != self.vapid_public_key:
            return "k is not the application's published key"
        try:
            header, claims, signature = parts["t"].split(".")
            raw = b64url_decode(signature)
            der = encode_dss_signature(
                int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
            )
            public = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b64url_decode(parts["k"])
            )
            public.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        except (KeyError, ValueError, InvalidSignature):
            return "bad JWT signature"
        if json.loads(b64url_decode(header)).get("alg") != "ES256":
            return "JWT alg is not ES256"
        body = json.loads(b64url_decode(claims))
        if body.get("aud") != self.origin:
            return f"aud {body.get('aud')}"
        if not time.time() < body.get("exp", 0) <= time.time() + 24 * 3600:
            return "exp not within 24 h"
        if body.get("sub") != self.subject:
            return f"sub {body.get('sub')}"
        return None
