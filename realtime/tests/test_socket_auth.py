"""Connecting: tokens, close codes, Origin, the first frame (SPEC §5)."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from conftest import token_for

pytestmark = pytest.mark.django_db(transaction=True)


async def test_good_token_gets_authenticated_frame_first(amake_user, open_socket):
    user = await amake_user("alice")
    socket = await open_socket(token=token_for(user))
    hello = socket.hello
    assert hello["user_id"] == user.id
    assert hello["last_seq"] == 0
    assert hello["heartbeat_interval"] == 30
    assert hello["timestamp"].endswith("Z")


async def test_token_in_bearer_subprotocol_selects_bearer(amake_user, open_socket):
    user = await amake_user("alice")
    socket = await open_socket(subprotocols=["bearer", token_for(user)])
    assert socket.subprotocol == "bearer"
    assert socket.hello["user_id"] == user.id


@pytest.mark.parametrize(
    "token",
    [None, "garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.bad-signature"],
    ids=["missing", "garbage", "malformed", "bad-signature"],
)
async def test_bad_token_is_accepted_then_closed_4001(open_socket, token):
    socket = await open_socket(token=token, expect_auth=False)
    assert await socket.close_code() == 4001


async def test_refresh_token_is_refused_4001(amake_user, open_socket):
    user = await amake_user("alice")
    refresh = await sync_to_async(RefreshToken.for_user)(user)
    socket = await open_socket(token=str(refresh), expect_auth=False)
    assert await socket.close_code() == 4001


async def test_token_signed_with_another_key_is_refused_4001(amake_user, open_socket):
    import jwt

    user = await amake_user("alice")
    forged = jwt.encode(
        {"token_type": "access", "user_id": user.id, "exp": 4102444800, "jti": "x"},
        "not-our-secret-key-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    socket = await open_socket(token=forged, expect_auth=False)
    assert await socket.close_code() == 4001


async def test_expired_token_closes_4002(amake_user, open_socket):
    user = await amake_user("alice")
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=-1))
    socket = await open_socket(token=str(token), expect_auth=False)
    assert await socket.close_code() == 4002


async def test_inactive_user_closes_4003(amake_user, open_socket):
    user = await amake_user("mallory", is_active=False)
    socket = await open_socket(token=token_for(user), expect_auth=False)
    assert await socket.close_code() == 4003


async def test_deleted_user_closes_4003(amake_user, open_socket):
    user = await amake_user("ghost")
    token = token_for(user)
    await sync_to_async(user.delete)()
    socket = await open_socket(token=token, expect_auth=False)
    assert await socket.close_code() == 4003


async def test_token_expiring_while_connected_closes_4002(amake_user, open_socket):
    user = await amake_user("alice")
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=timedelta(seconds=1))
    socket = await open_socket(token=str(token))
    assert await socket.close_code(timeout=4) == 4002


async def test_authenticate_frame_pushes_back_the_expiry(amake_user, open_socket):
    user = await amake_user("alice")
    short = AccessToken.for_user(user)
    # exp has one-second resolution; 3 s leaves room to connect on a loaded machine.
    short.set_exp(lifetime=timedelta(seconds=3))
    socket = await open_socket(token=str(short))
    await socket.send({"type": "authenticate", "token": token_for(user)})
    assert (await socket.receive_type("authenticated"))["user_id"] == user.id
    await socket.assert_quiet_for(3.6)
    await socket.send({"type": "ping"})
    assert (await socket.receive_type("pong"))["timestamp"]


async def test_foreign_origin_is_refused_at_handshake(amake_user):
    from channels.testing import WebsocketCommunicator

    from quantumworks.asgi import application

    user = await amake_user("alice")
    communicator = WebsocketCommunicator(
        application,
        f"/ws/?token={token_for(user)}",
        headers=[(b"origin", b"https://evil.example"), (b"host", b"127.0.0.1:8000")],
    )
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()


async def test_own_origin_and_no_origin_are_allowed(amake_user, open_socket):
    user = await amake_user("alice")
    own = await open_socket(
        token=token_for(user),
        headers=[(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
    )
    native = await open_socket(token=token_for(user))
    assert own.hello["user_id"] == native.hello["user_id"] == user.id


async def test_listed_origin_is_allowed(amake_user, open_socket, settings):
    settings.QW_ALLOWED_ORIGINS = ["https://app.quantumworks.example"]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "api.internal"]
    user = await amake_user("alice")
    socket = await open_socket(
        token=token_for(user),
        headers=[
            (b"origin", b"https://app.quantumworks.example"),
            (b"host", b"api.internal"),
        ],
    )
    assert socket.hello["user_id"] == user.id


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.evil.example:8000", "", "[::1"])
async def test_host_outside_allowed_hosts_is_refused_at_handshake(amake_user, host):
    from channels.testing import WebsocketCommunicator

    from quantumworks.asgi import application

    user = await amake_user("alice")
    communicator = WebsocketCommunicator(
        application,
        f"/ws/?token={token_for(user)}",
        headers=[(b"origin", f"http://{host}".encode()), (b"host", host.encode())],
    )
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()
