"""GET /api/users/?q=: pick people by name."""

import pytest

from conftest import authed_client

pytestmark = pytest.mark.django_db


def test_search_finds_active_users_by_name_prefix_first_and_never_yourself(make_user):
    alice = make_user("alice")
    make_user("bob")
    make_user("jimbob")
    make_user("bobby", is_active=False)
    make_user("carol")

    response = authed_client(alice).get("/api/users/", {"q": "BO"})
    also_me = authed_client(alice).get("/api/users/", {"q": "ali"})

    assert response.status_code == 200
    assert [u["username"] for u in response.json()] == ["bob", "jimbob"]
    assert set(response.json()[0]) == {"id", "username"}
    assert also_me.json() == []


def test_search_returns_at_most_ten(make_user):
    me = make_user("me")
    for n in range(12):
        make_user(f"dev{n:02d}")

    response = authed_client(me).get("/api/users/", {"q": "dev"})

    assert [u["username"] for u in response.json()] == [f"dev{n:02d}" for n in range(10)]


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}, {"q": "x" * 151}])
def test_search_without_a_usable_query_is_a_400_with_the_field_error(make_user, params):
    response = authed_client(make_user("alice")).get("/api/users/", params)

    assert response.status_code == 400
    assert "q" in response.json()


def test_search_needs_a_signed_in_user(api_client, make_user):
    make_user("bob")

    assert api_client.get("/api/users/", {"q": "bob"}).status_code == 401
