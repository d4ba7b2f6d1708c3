"""Deactivation and logout close open sockets on every process (SPEC §5, §7)."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from conftest import authed_client, token_for
from testkit.servers import ServerProcess

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def make_superuser(make_user):
    user = make_user("moderator", is_staff=True)
    user.is_superuser = True
    user.save()
    return user


@sync_to_async
def untick_active_in_admin(staff, user):
    """The admin change form, as a moderator submits it with "Active" unticked."""
    client = Client()
    client.force_login(staff)
    url = f"/admin/auth/user/{user.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name not in {"password", "groups", "user_permissions"}
    }
    data.update(
        {
            "username": user.username,
            "is_active": "",
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
            "last_login_0": "",
            "last_login_1": "",
        }
    )
    data = {k: v for k, v in data.items() if k not in {"is_active", "date_joined", "last_login"}}
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]


async def test_deactivating_in_admin_closes_sockets_on_every_process_with_4003(
    make_user, amake_user, open_socket
):
    staff = await make_superuser(make_user)
    alice = await amake_user("alice")
    bob = await amake_user("bob")
    other_process = await asyncio.to_thread(ServerProcess().start)
    try:
        local = await open_socket(token=token_for(alice))
        bystander = await open_socket(token=token_for(bob))
        async with connect(f"{other_process.ws_url}?token={token_for(alice)}") as remote:
            assert json.loads(await remote.recv())["type"] == "authenticated"
            await untick_active_in_admin(staff, alice)
            assert await local.close_code(timeout=1) == 4003
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(1):
                    while True:
                        await remote.recv()
            assert closed.value.rcvd.code == 4003
        await bystander.send({"type": "ping"})
        await bystander.receive_type("pong")
        assert not (await sync_to_async(get_user_model().objects.get)(pk=alice.pk)).is_active
        # and a new socket is refused
        again = await open_socket(token=token_for(alice), expect_auth=False)
        assert await again.close_code() == 4003
    finally:
        await asyncio.to_thread(other_process.stop)


async def test_logout_blacklists_the_refresh_token_and_closes_sockets(amake_user, open_socket):
    alice = await amake_user("alice")
    refresh = await sync_to_async(RefreshToken.for_user)(alice)
    socket = await open_socket(token=token_for(alice))
    response = await sync_to_async(authed_client(alice).post)(
        "/api/auth/logout/", {"refresh": str(refresh)}, format="json"
    )
    assert response.status_code == 204
    assert await socket.close_code(timeout=1) == 4001
    refreshed = await sync_to_async(Client().post)(
        "/api/auth/token/refresh/", {"refresh": str(refresh)}, content_type="application/json"
    )
    assert refreshed.status_code == 401


def test_logout_with_someone_elses_refresh_token_is_refused(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    response = authed_client(alice).post(
        "/api/auth/logout/", {"refresh": str(RefreshToken.for_user(bob))}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"refresh": ["not your token"]}


def test_logout_with_garbage_is_a_field_error(make_user):
    response = authed_client(make_user("alice")).post(
        "/api/auth/logout/", {"refresh": "garbage"}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"refresh": ["invalid or expired token"]}


async def test_deactivate_action_closes_sockets_of_selected_users_only(
    make_user, amake_user, open_socket
):
    staff = await make_superuser(make_user)
    alice, bob, carol = (
        await amake_user("alice"),
        await amake_user("bob"),
        await amake_user("carol"),
    )
    sockets = {
        user.username: await open_socket(token=token_for(user)) for user in (alice, bob, carol)
    }

    @sync_to_async
    def run_action():
        client = Client()
        client.force_login(staff)
        response = client.post(
            "/admin/auth/user/",
            {"action": "deactivate_users", "_selected_action": [str(alice.pk), str(bob.pk)]},
            follow=True,
        )
        assert "2 user(s) deactivated" in response.content.decode()

    await run_action()
    assert await sockets["alice"].close_code(timeout=1) == 4003
    assert await sockets["bob"].close_code(timeout=1) == 4003
    await sockets["carol"].send({"type": "ping"})
    await sockets["carol"].receive_type("pong")
    active = await sync_to_async(
        lambda: sorted(
            get_user_model().objects.filter(is_active=True).values_list("username", flat=True)
        )
    )()
    assert active == ["carol", "moderator"]
