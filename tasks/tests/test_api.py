"""/api/projects/ and /api/tasks/: who sees what, creating, validation, the schema."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import authed_client
from tasks.api import NewestFirst
from tasks.models import Project, Task

pytestmark = pytest.mark.django_db


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- projects ---------------------------------------------------------------------
@pytest.mark.parametrize("role", ["author", "freelancer", "watcher", "staff"])
def test_project_is_listed_and_shown_to_everyone_taking_part(board, role):
    client = authed_client(getattr(board, role))

    listed = results(client.get("/api/projects/"))
    shown = client.get(f"/api/projects/{board.project.id}/")

    assert [p["id"] for p in listed] == [board.project.id]
    assert shown.status_code == 200
    assert shown.json() == listed[0]
    assert shown.json()["author"] == board.author.id
    assert shown.json()["title"] == "Website"


def test_project_of_others_is_neither_listed_nor_shown(board):
    client = authed_client(board.stranger)

    assert results(client.get("/api/projects/")) == []
    foreign = client.get(f"/api/projects/{board.project.id}/")
    missing = client.get(f"/api/projects/{board.project.id + 1000}/")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()


def test_user_in_several_roles_sees_a_project_once(board):
    board.task.watchers.add(board.author)
    Task.objects.create(project=board.project, title="Second", freelancer=board.author)

    listed = results(authed_client(board.author).get("/api/projects/"))

    assert [p["id"] for p in listed] == [board.project.id]


def test_creating_a_project_makes_the_caller_its_author(board):
    response = authed_client(board.stranger).post(
        "/api/projects/", {"title": "Mobile app"}, format="json"
    )

    assert response.status_code == 201
    project = Project.objects.get(id=response.json()["id"])
    assert (project.author_id, project.title) == (board.stranger.id, "Mobile app")
    assert response.json()["author"] == board.stranger.id


@pytest.mark.parametrize(
    "body, error",
    [
        ({}, {"title": ["This field is required."]}),
        ({"title": "   "}, {"title": ["This field may not be blank."]}),
        ({"title": "x" * 201}, {"title": ["Ensure this field has no more than 200 characters."]}),
        # The schema says string; DRF's CharField stored 0 as "0" (issue 20).
        ({"title": 0}, {"title": ["Not a valid string."]}),
    ],
)
def test_project_without_a_proper_title_is_a_field_error(board, body, error):
    response = authed_client(board.author).post("/api/projects/", body, format="json")

    assert response.status_code == 400
    assert response.json() == error
    assert Project.objects.count() == 1


# --- tasks ------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["author", "freelancer", "watcher", "staff"])
def test_task_is_listed_and_shown_to_everyone_taking_part(board, role):
    client = authed_client(getattr(board, role))

    listed = results(client.get("/api/tasks/"))
    shown = client.get(f"/api/tasks/{board.task.id}/")

    assert [t["id"] for t in listed] == [board.task.id]
    assert shown.status_code == 200
    body = shown.json()
    assert body == listed[0]
    assert body["project"] == board.project.id
    assert body["title"] == "Build API"
    assert body["freelancer"] == board.freelancer.id
    assert body["watchers"] == [board.watcher.id]
    assert body["status"] == "open"


def test_freelancer_of_one_task_does_not_see_the_projects_other_tasks(board, make_user):
    other = Task.objects.create(project=board.project, title="Design", freelancer=make_user())

    listed = results(authed_client(board.freelancer).get("/api/tasks/"))

    assert [t["id"] for t in listed] == [board.task.id]
    response = authed_client(board.freelancer).get(f"/api/tasks/{other.id}/")
    assert response.status_code == 404


def test_staff_see_every_task(board, make_user):
    elsewhere = Project.objects.create(author=make_user(), title="Elsewhere")
    other = Task.objects.create(project=elsewhere, title="Other")

    listed = results(authed_client(board.staff).get("/api/tasks/"))

    assert {t["id"] for t in listed} == {board.task.id, other.id}


def test_tasks_can_be_filtered_by_project_and_status(board):
    second = Project.objects.create(author=board.author, title="Second")
    in_second = Task.objects.create(project=second, title="Elsewhere", status="review")
    client = authed_client(board.author)

    by_project = results(client.get(f"/api/tasks/?project={second.id}"))
    by_status = results(client.get("/api/tasks/?status=open"))

    assert [t["id"] for t in by_project] == [in_second.id]
    assert [t["id"] for t in by_status] == [board.task.id]
    bad = client.get("/api/tasks/?status=launched&project=x")
    assert bad.status_code == 400
    assert set(bad.json()) == {"status", "project"}


def test_an_empty_filter_value_is_a_field_error_not_no_filter(board):
    # DRF read `?status=` as an absent filter and listed everything; the
    # schema says a status or an integer (issue 20).
    response = authed_client(board.author).get("/api/tasks/?status=&project=")

    assert response.status_code == 400
    assert response.json() == {
        "status": ['"" is not a valid choice.'],
        "project": ["A valid integer is required."],
    }


@pytest.mark.parametrize(
    "page_size, error",
    [
        ("abc", "A valid integer is required."),
        ("0", "Ensure this value is greater than or equal to 1."),
        ("-3", "Ensure this value is greater than or equal to 1."),
        ("", "A valid integer is required."),
    ],
)
def test_a_page_size_that_is_not_a_positive_integer_is_a_400(board, page_size, error):
    # DRF silently used the default page size (issue 20).
    response = authed_client(board.author).get(f"/api/tasks/?page_size={page_size}")

    assert response.status_code == 400
    assert response.json() == {"page_size": [error]}


def test_a_page_size_over_the_maximum_gives_the_maximum(board, monkeypatch):
    monkeypatch.setattr(NewestFirst, "max_page_size", 2)
    for n in range(3):
        Task.objects.create(project=board.project, title=f"Task {n}")

    page = authed_client(board.author).get("/api/tasks/?page_size=100000").json()

    assert len(page["results"]) == 2
    assert page["next"] is not None


def test_task_list_pages_newest_first(board):
    for n in range(3):
        Task.objects.create(project=board.project, title=f"Task {n}")
    client = authed_client(board.author)

    first = client.get("/api/tasks/?page_size=2").json()
    second = client.get(first["next"]).json()

    ids = [t["id"] for t in first["results"] + second["results"]]
    assert ids == sorted(Task.objects.values_list("id", flat=True), reverse=True)
    assert second["next"] is None


def test_task_list_takes_the_same_number_of_queries_for_many_tasks_and_watchers(board, make_user):
    client = authed_client(board.author)
    with CaptureQueriesContext(connection) as few:
        results(client.get("/api/tasks/"))
    watchers = [make_user() for _ in range(5)]
    for n in range(10):
        task = Task.objects.create(project=board.project, title=f"Task {n}")
        task.watchers.add(*watchers)
    with CaptureQueriesContext(connection) as many:
        assert len(results(client.get("/api/tasks/"))) == 11

    assert len(many) == len(few)


def test_author_adds_a_task_with_freelancer_and_watchers(board, make_user):
    extra = make_user("extra")
    response = authed_client(board.author).post(
        "/api/tasks/",
        {
            "project": board.project.id,
            "title": "Write docs",
            "freelancer": board.freelancer.id,
            "watchers": [board.watcher.id, extra.id, extra.id],
        },
        format="json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    task = Task.objects.get(id=body["id"])
    assert (task.project_id, task.title, task.freelancer_id, task.status) == (
        board.project.id,
        "Write docs",
        board.freelancer.id,
        "open",
    )
    assert sorted(task.watchers.values_list("id", flat=True)) == sorted(
        [board.watcher.id, extra.id]
    )
    assert sorted(body["watchers"]) == sorted([board.watcher.id, extra.id])


def test_author_adds_a_task_with_nobody_on_it_yet(board):
    response = authed_client(board.author).post(
        "/api/tasks/", {"project": board.project.id, "title": "Later"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["freelancer"] is None
    assert response.json()["watchers"] == []


@pytest.mark.parametrize("role", ["freelancer", "watcher", "staff"])
def test_participant_who_is_not_the_author_cannot_add_tasks(board, role):
    response = authed_client(getattr(board, role)).post(
        "/api/tasks/", {"project": board.project.id, "title": "Sneaky"}, format="json"
    )

    assert response.status_code == 403
    assert Task.objects.count() == 1


def test_stranger_cannot_add_tasks_and_cannot_tell_the_project_exists(board):
    client = authed_client(board.stranger)

    foreign = client.post("/api/tasks/", {"project": board.project.id, "title": "x"}, format="json")
    missing = client.post("/api/tasks/", {"project": 999999, "title": "x"}, format="json")

    assert foreign.status_code == missing.status_code == 400
    assert set(foreign.json()) == set(missing.json()) == {"project"}
    assert foreign.json()["project"][0].replace(str(board.project.id), "N") == missing.json()[
        "project"
    ][0].replace("999999", "N")
    assert Task.objects.count() == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"project": None, "title": "No project"}, "project"),
        ({"project": "abc", "title": "x"}, "project"),
        ({"title": ""}, "title"),
        ({"title": 7}, "title"),
        ({"freelancer": 999999, "title": "x"}, "freelancer"),
        ({"watchers": [999999], "title": "x"}, "watchers"),
        ({"watchers": "1,2", "title": "x"}, "watchers"),
    ],
)
def test_bad_task_fields_are_field_errors(board, body, field):
    body = {"project": board.project.id, **body}

    response = authed_client(board.author).post("/api/tasks/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Task.objects.count() == 1


def test_inactive_user_cannot_be_made_freelancer(board, make_user):
    gone = make_user("gone", is_active=False)

    response = authed_client(board.author).post(
        "/api/tasks/",
        {"project": board.project.id, "title": "x", "freelancer": gone.id},
        format="json",
    )

    assert response.status_code == 400
    assert list(response.json()) == ["freelancer"]


# --- no enumeration ---------------------------------------------------------------
@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/api/projects/{project}/", None),
        ("get", "/api/tasks/{task}/", None),
        ("patch", "/api/tasks/{task}/status/", {"status": "in_progress"}),
        ("patch", "/api/tasks/{task}/status/", {"status": "done"}),
    ],
)
def test_stranger_gets_404_on_every_endpoint_about_the_task_or_project(board, method, path, body):
    url = path.format(project=board.project.id, task=board.task.id)

    response = getattr(authed_client(board.stranger), method)(url, body, format="json")

    assert response.status_code == 404
    assert Task.objects.get().status == "open"


def test_anonymous_caller_is_refused(board):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/tasks/").status_code == 401
    assert APIClient().get("/api/projects/").status_code == 401


# --- OpenAPI ----------------------------------------------------------------------
def test_schema_describes_request_and_response_shapes(board):
    response = authed_client(board.author).get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/projects/"])
    assert {"get", "post"} <= set(paths["/api/tasks/"])
    assert "get" in paths["/api/projects/{project_id}/"]
    assert "get" in paths["/api/tasks/{task_id}/"]
    status_op = paths["/api/tasks/{task_id}/status/"]["patch"]
    request_ref = status_op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    request_schema = schema["components"]["schemas"][request_ref.rsplit("/", 1)[1]]
    assert "status" in request_schema["properties"]
    assert {"200", "403", "404", "409"} <= set(status_op["responses"])
    conflict_ref = status_op["responses"]["409"]["content"]["application/json"]["schema"]["$ref"]
    conflict = schema["components"]["schemas"][conflict_ref.rsplit("/", 1)[1]]
    assert {"detail", "status", "allowed"} <= set(conflict["properties"])
    listing = paths["/api/tasks/"]["get"]["responses"]["200"]["content"]["application/json"]
    listing_schema = schema["components"]["schemas"][listing["schema"]["$ref"].rsplit("/", 1)[1]]
    assert "results" in listing_schema["properties"]
