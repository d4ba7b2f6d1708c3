"""Forged, tampered and dead tokens on every door that takes a token (SPEC §5, §7).

Each case goes to REST (`Authorization: Bearer`), to a socket connect and
to an `authenticate` frame on an open socket. REST answers 401 with one body
shape; the socket closes with 4001 (malformed, forged, wrong type,
not yet valid, revoked), 4002 (expired) or 4003 (deleted or inactive user).
"""

import base64
import json
import time
from dataclasses import dataclass

import jwt
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client

from realtime.auth.revocation import access_tokens_revoke
from realtime.auth.tokens import AccessToken, RefreshToken

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    # the HS512 case signs with our 49-byte key on purpose
    pytest.mark.filterwarnings("ignore:The HMAC key"),
]


def b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(user, **changes) -> dict:
    now = time.time()
    payload = {
        "token_type": "access",
        "exp": int(now) + 600,
        "iat": now,
        "jti": "f" * 32,
        "user_id": str(user.id),
    }
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not None}


def signed(payload: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or settings.SECRET_KEY, algorithm=algorithm)


@dataclass
class Users:
    alice: object
    bob: object
    inactive: object
    deleted_id: int


def alg_none(users):
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(users.alice))}."


def alg_none_keeping_signature(users):
    _, payload, signature = str(AccessToken.for_user(users.alice)).split(".")
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}"


def user_id_swapped(users):
    header, _, signature = str(AccessToken.for_user(users.alice)).split(".")
    return f"{header}.{b64(claims(users.bob))}.{signature}"


def exp_extended(users):
    token = AccessToken.for_user(users.alice)
    header, _, signature = str(token).split(".")
    return f"{header}.{b64({**token.payload, 'exp': token['exp'] + 86400})}.{signature}"


def revoked(users):
    token = str(AccessToken.for_user(users.alice))
    access_tokens_revoke(user_id=users.alice.id)
    return token


# (name, builder, REST detail, socket close code)
CASES = [
    ("alg-none", alg_none, None, 4001),
    ("alg-none-with-signature", alg_none_keeping_signature, None, 4001),
    ("wrong-key", lambda u: signed(claims(u.alice), "not-our-secret-" * 4), None, 4001),
    ("hs512-with-our-key", lambda u: signed(claims(u.alice), algorithm="HS512"), None, 4001),
    ("user-id-swapped", user_id_swapped, None, 4001),
    ("exp-extended", exp_extended, None, 4001),
    ("expired", lambda u: signed(claims(u.alice, exp=int(time.time()) - 5)), None, 4002),
    ("not-yet-valid-nbf", lambda u: signed(claims(u.alice, nbf=time.time() + 600)), None, 4001),
    ("issued-in-future", lambda u: signed(claims(u.alice, iat=time.time() + 600)), None, 4001),
    ("refresh-as-access", lambda u: str(RefreshToken.for_user(u.alice)), None, 4001),
    ("no-token-type", lambda u: signed(claims(u.alice, token_type=None)), None, 4001),
    ("no-jti", lambda u: signed(claims(u.alice, jti=None)), None, 4001),
    ("no-user-id", lambda u: signed(claims(u.alice, user_id=None)), None, 4001),
    ("non-numeric-user-id", lambda u: signed(claims(u.alice, user_id="abc")), None, 4001),
    ("exp-not-a-number", lambda u: signed(claims(u.alice, exp="never")), None, 4001),
    ("revoked-by-logout", revoked, "Token is revoked", 4001),
    ("deleted-user", lambda u: signed(claims(u.alice, user_id=str(u.deleted_id))), None, 4003),
    ("inactive-user", lambda u: str(AccessToken.for_user(u.inactive)), "User is inactive", 4003),
    ("truncated", lambda u: str(AccessToken.for_user(u.alice))[:-6], None, 4001),
    (
        "two-segments",
        lambda u: ".".join(str(AccessToken.for_user(u.alice)).split(".")[:2]),
        None,
        4001,
    ),
    ("garbage", lambda u: "garbage", None, 4001),
    ("non-ascii", lambda u: "tökën²", None, 4001),
]


@pytest.fixture
def users(make_user):
    gone = make_user("gone")
    deleted_id = gone.id
    gone.delete()
    return Users(
        make_user("alice"), make_user("bob"), make_user("idle", is_active=False), deleted_id
    )


def test_rest_refuses_every_case_with_401_and_one_body_shape(users):
    wrong = {}
    for name, build, detail, _ in CASES:
        response = Client().get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {build(users)}")
        body = response.json()
        if (
            response.status_code != 401
            or set(body) != {"detail", "code"}
            or not all(isinstance(value, str) for value in body.values())
            or (detail and body["detail"] != detail)
            or not response.headers["WWW-Authenticate"].startswith("Bearer")
        ):
            wrong[name] = (response.status_code, body)
    assert wrong == {}
    for header in ["Bearer", "Bearer ", "Bearer a b"]:
        response = Client().get("/api/me/", HTTP_AUTHORIZATION=header)
        assert (response.status_code, set(response.json())) == (401, {"detail", "code"})


async def test_socket_connect_closes_with_each_cases_code(users, open_socket):
    codes = {}
    for name, build, _, _ in CASES:
        token = await sync_to_async(build)(users)
        socket = await open_socket(subprotocols=["bearer", token], expect_auth=False)
        codes[name] = await socket.close_code()
    empty = await open_socket(token="", expect_auth=False)
    codes["empty"] = await empty.close_code()
    assert codes == {**{name: code for name, _, _, code in CASES}, "empty": 4001}


async def test_authenticate_frame_closes_with_each_cases_code(users, open_socket):
    bob_token = await sync_to_async(lambda: str(AccessToken.for_user(users.bob)))()
    codes = {}
    for name, build, _, _ in CASES:
        socket = await open_socket(token=bob_token)
        await socket.send({"type": "authenticate", "token": await sync_to_async(build)(users)})
        codes[name] = await socket.close_code()
    assert codes == {name: code for name, _, _, code in CASES}
