"""GET /api/notifications/, POST …/{id}/read/, POST …/read-all/ (SPEC §7)."""

import pytest

from conftest import authed_client
from notifications.models import Notification
from realtime.models import Event

pytestmark = pytest.mark.django_db

LIST = "/api/notifications/"


@pytest.fixture
def alice(make_user):
    return make_user("alice")


def notify(user, *titles: str) -> list[Notification]:
    return [Notification.objects.create(user=user, title=title) for title in titles]


def test_list_is_newest_first_with_unread_count_and_only_my_notifications(alice, make_user):
    first, _, third = notify(alice, "first", "second", "third")
    notify(make_user("bob"), "not for alice")
    Notification.objects.filter(id=first.id).update(read_at=first.created_at)

    response = authed_client(alice).get(LIST)

    assert response.status_code == 200
    body = response.json()
    assert [n["title"] for n in body["results"]] == ["third", "second", "first"]
    assert body["unread_count"] == 2
    assert body["results"][0] == {
        "id": third.id,
        "notification_type": "info",
        "title": "third",
        "message": "",
        "link": "",
        "created_at": third.created_at.isoformat().replace("+00:00", "Z"),
        "read_at": None,
    }
    assert body["results"][2]["read_at"] is not None


def test_unread_filter_lists_only_unread_and_keeps_the_total_unread_count(alice):
    first, second, third = notify(alice, "first", "second", "third")
    Notification.objects.filter(id=second.id).update(read_at=second.created_at)

    body = authed_client(alice).get(LIST, {"unread": "true"}).json()

    assert [n["id"] for n in body["results"]] == [third.id, first.id]
    assert body["unread_count"] == 2


@pytest.mark.parametrize("value", ["maybe", ""])
def test_bad_unread_value_is_a_400(alice, value):
    # An empty value too: DRF read it as absent, the schema says a boolean (issue 20).
    response = authed_client(alice).get(LIST, {"unread": value})
    assert response.status_code == 400
    assert response.json() == {"unread": ["Must be a valid boolean."]}


def test_cursor_pages_cover_every_notification_once_while_new_ones_arrive(alice):
    created = notify(alice, *[f"n{i}" for i in range(5)])
    client = authed_client(alice)

    page = client.get(LIST, {"page_size": 2}).json()
    seen = [n["id"] for n in page["results"]]
    assert page["previous"] is None
    notify(alice, "arrived while paging")  # lands before page one, not in the pages ahead
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [n["id"] for n in page["results"]]

    assert seen == [n.id for n in reversed(created)]
    assert page["unread_count"] == 6


def test_unauthenticated_list_is_refused(client):
    assert client.get(LIST).status_code == 401


def test_read_marks_my_notification_and_returns_it(alice):
    (notification,) = notify(alice, "hi")

    response = authed_client(alice).post(f"{LIST}{notification.id}/read/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["title"]) == (notification.id, "hi")
    assert body["read_at"] is not None
    assert Notification.objects.get(id=notification.id).read_at is not None


def test_reading_another_users_notification_is_a_404_and_changes_nothing(alice, make_user):
    (notification,) = notify(alice, "private")
    mallory = make_user("mallory")

    response = authed_client(mallory).post(f"{LIST}{notification.id}/read/")

    assert response.status_code == 404
    assert Notification.objects.get(id=notification.id).read_at is None
    assert list(Event.objects.filter(type="notification_read")) == []


def test_reading_a_missing_notification_is_a_404(alice):
    assert authed_client(alice).post(f"{LIST}987654/read/").status_code == 404


def test_read_all_marks_only_mine_and_reports_counts(alice, make_user):
    notify(alice, "a", "b", "c")
    bob = make_user("bob")
    notify(bob, "bob's")

    response = authed_client(alice).post(f"{LIST}read-all/")

    assert response.status_code == 200
    assert response.json() == {"marked_read": 3, "unread_count": 0}
    assert Notification.objects.filter(user=bob, read_at__isnull=True).count() == 1
    assert authed_client(alice).post(f"{LIST}read-all/").json() == {
        "marked_read": 0,
        "unread_count": 0,
    }


def test_openapi_schema_documents_the_unread_count(alice):
    response = authed_client(alice).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    page = schema["components"]["schemas"]["PaginatedNotificationList"]
    assert "unread_count" in page["properties"]
    assert "/api/notifications/{notification_id}/read/" in schema["paths"]
    assert "/api/notifications/read-all/" in schema["paths"]


def test_unread_badge_reads_a_page_and_an_indexed_count_whatever_the_history(
    alice, django_assert_num_queries
):
    Notification.objects.bulk_create(
        Notification(user=alice, title=f"old {n}", read_at="2026-01-01T00:00:00Z")
        for n in range(300)
    )
    notify(alice, "new", "newer")
    client = authed_client(alice)

    # the user lookup, one page of unread rows, the count (notification_unread_idx)
    with django_assert_num_queries(3):
        response = client.get(LIST, {"unread": "true", "page_size": 1})

    assert response.json()["unread_count"] == 2
    assert [n["title"] for n in response.json()["results"]] == ["newer"]
