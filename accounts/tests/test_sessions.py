"""Logout, deactivation and a password change end access tokens too (issue 9, SPEC §5, §7).

Before: after logout the access token kept working (REST 200, a new socket
authenticated and chatted) until it expired.
"""

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts.services import users_deactivate
from conftest import PASSWORD
from realtime.auth.revocation import access_tokens_revoke
from realtime.auth.tokens import AccessToken
from testkit.servers import ServerProcess
from testkit.ws import next_of_type

pytestmark = pytest.mark.django_db(transaction=True)
REVOKED = {"detail": "Token is revoked", "code": "token_not_valid"}


def sign_in(username: str, password: str = PASSWORD) -> tuple[str, str]:
    response = Client().post(
        "/api/auth/token/",
        {"username": username, "password": password},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return response.json()["access"], response.json()["refresh"]


def me(access: str) -> tuple[int, dict]:
    response = Client().get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {access}")
    return response.status_code, response.json()


def refresh_status(refresh: str) -> int:
    return (
        Client()
        .post("/api/auth/token/refresh/", {"refresh": refresh}, content_type="application/json")
        .status_code
    )


def logout(access: str, refresh: str) -> None:
    response = Client().post(
        "/api/auth/logout/",
        {"refresh": refresh},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {access}",
    )
    assert response.status_code == 204, response.content


async def chat_works(socket, receiver_id: int) -> None:
    await socket.send({"type": "chat_message", "receiver_id": receiver_id, "content": "hello"})
    await socket.receive_type("message_sent")


async def test_logout_ends_the_access_token_on_rest_and_sockets_and_a_new_sign_in_works(
    amake_user, open_socket
):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    access, refresh = await sync_to_async(sign_in)("alice")
    socket = await open_socket(token=access)
    assert (await sync_to_async(me)(access))[0] == 200
    await sync_to_async(logout)(access, refresh)
    assert await socket.close_code(timeout=2) == 4001
    assert await sync_to_async(me)(access) == (401, REVOKED)
    again = await open_socket(token=access, expect_auth=False)
    assert await again.close_code() == 4001
    # Signing in again at once (within the same second) works everywhere.
    fresh, _ = await sync_to_async(sign_in)("alice")
    assert (await sync_to_async(me)(fresh))[0] == 200
    new_socket = await open_socket(token=fresh)
    assert new_socket.hello["user_id"] == alice.id
    await chat_works(new_socket, bob.id)


def test_a_token_issued_right_after_a_revocation_is_told_from_one_issued_right_before(
    make_user,
):
    alice = make_user("alice")
    before = str(AccessToken.for_user(alice))
    access_tokens_revoke(user_id=alice.id)
    after = str(AccessToken.for_user(alice))
    assert me(before) == (401, REVOKED)
    assert me(after)[0] == 200


async def test_deactivation_ends_access_and_refresh_tokens(amake_user, open_socket):
    await amake_user("alice")
    access, refresh = await sync_to_async(sign_in)("alice")
    socket = await open_socket(token=access)
    user_id = socket.hello["user_id"]
    await sync_to_async(users_deactivate)(user_ids=[user_id])
    assert await socket.close_code(timeout=2) == 4003
    status, body = await sync_to_async(me)(access)
    assert status == 401 and set(body) == {"detail", "code"}
    assert await sync_to_async(refresh_status)(refresh) == 401
    again = await open_socket(token=access, expect_auth=False)
    assert await again.close_code() == 4003


@sync_to_async
def change_own_password_in_admin(username: str, new_password: str) -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username=username)
    client = Client()
    client.force_login(user)
    response = client.post(
        "/admin/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": new_password,
            "new_password2": new_password,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]


async def test_a_password_change_ends_every_session_of_the_user(make_user, open_socket):
    await sync_to_async(make_user)("alice", is_staff=True)
    bob = await sync_to_async(make_user)("bob")
    access, refresh = await sync_to_async(sign_in)("alice")
    other_device, other_refresh = await sync_to_async(sign_in)("alice")
    socket = await open_socket(token=access)
    await change_own_password_in_admin("alice", "a-new-password-2026")
    assert await socket.close_code(timeout=2) == 4001
    for token in (access, other_device):
        assert await sync_to_async(me)(token) == (401, REVOKED)
        again = await open_socket(token=token, expect_auth=False)
        assert await again.close_code() == 4001
    for old in (refresh, other_refresh):
        assert await sync_to_async(refresh_status)(old) == 401
    fresh, _ = await sync_to_async(sign_in)("alice", "a-new-password-2026")
    new_socket = await open_socket(token=fresh)
    await chat_works(new_socket, bob.id)


def test_a_password_set_by_an_admin_ends_the_users_tokens(make_user):
    staff = make_user("moderator", is_staff=True)
    staff.is_superuser = True
    staff.save()
    alice = make_user("alice")
    access, _ = sign_in("alice")
    client = Client()
    client.force_login(staff)
    response = client.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": "set-by-admin-2026", "password2": "set-by-admin-2026"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert me(access) == (401, REVOKED)
    assert me(sign_in("alice", "set-by-admin-2026")[0])[0] == 200


def test_signing_in_ends_nothing(make_user):
    make_user("alice")
    first, _ = sign_in("alice")
    sign_in("alice")
    assert me(first)[0] == 200


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None):
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def end_by_logout(user, access, refresh):
    logout(access, refresh)


def end_by_deactivation(user, access, refresh):
    users_deactivate(user_ids=[user.id])


def end_by_new_password(user, access, refresh):
    user.set_password("another-password-2026")
    user.save()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("end", "code", "signs_in_again"),
    [
        (end_by_logout, 4001, True),
        (end_by_deactivation, 4003, False),
        (end_by_new_password, 4001, False),
    ],
    ids=["logout", "deactivation", "password-change"],
)
async def test_a_session_ended_on_one_process_is_ended_on_another(
    amake_user, end, code, signs_in_again
):
    alice = await amake_user("alice")
    bob = await amake_user("bob")
    other = await asyncio.to_thread(ServerProcess().start)
    try:
        # Signed in here (the test process): the token must work on the other process.
        access, refresh = await sync_to_async(sign_in)("alice")
        async with connect(f"{other.ws_url}?token={access}") as remote:
            await next_of_type(remote, "authenticated")
            await sync_to_async(end)(alice, access, refresh)
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(3):
                    while True:
                        await remote.recv()
            assert closed.value.rcvd.code == code
        status, body = await asyncio.to_thread(
            http, "GET", f"{other.http_url}/api/me/", token=access
        )
        assert status == 401 and set(json.loads(body)) == {"detail", "code"}
        async with connect(f"{other.ws_url}?token={access}") as refused:
            with pytest.raises(ConnectionClosed) as closed:
                await refused.recv()
            assert closed.value.rcvd.code == code
        status, _ = await asyncio.to_thread(
            http, "POST", f"{other.http_url}/api/auth/token/refresh/", body={"refresh": refresh}
        )
        assert status == 401
        if signs_in_again:
            fresh, _ = await sync_to_async(sign_in)("alice")
            async with connect(f"{other.ws_url}?token={fresh}") as ws:
                await next_of_type(ws, "authenticated")
                await ws.send(
                    json.dumps({"type": "chat_message", "receiver_id": bob.id, "content": "hi"})
                )
                await next_of_type(ws, "message_sent")
    finally:
        await asyncio.to_thread(other.stop)


def test_refreshing_a_deleted_users_token_is_a_401(make_user):
    make_user("alice")
    _, refresh = sign_in("alice")
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="alice").delete()
    response = Client(raise_request_exception=False).post(
        "/api/auth/token/refresh/", {"refresh": refresh}, content_type="application/json"
    )
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "no_active_account"
