"""What realtime.rest.openapi adds to the schema, and the answers it describes (issue 20).

tests/test_openapi_conformance.py runs Schemathesis over the live schema;
these pin the rules a new route inherits without running it.
"""

import pytest
from django.urls import path
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView, UpdateAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from conftest import authed_client
from realtime.models import Event
from realtime.rest.openapi import NOT_BLANK

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    return client.get("/api/schema/?format=json").json()


def operations(schema):
    for route, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {route}", operation


def component(schema, content):
    return schema["components"]["schemas"][content["application/json"]["schema"]["$ref"][21:]]


def test_every_operation_lists_the_errors_it_can_answer(schema):
    for name, operation in operations(schema):
        codes = set(operation["responses"])
        parameters = operation.get("parameters", [])
        if any(operation.get("security", [{}])):
            assert "401" in codes, name
        if "requestBody" in operation:
            assert {"400", "415"} <= codes, name
        if any(p["in"] == "query" for p in parameters):
            assert "400" in codes, name
        if any(p["in"] == "path" or p["name"] == "cursor" for p in parameters):
            assert "404" in codes, name
        # PostgreSQL or Redis unreachable (realtime.faults): retry later.
        assert "503" in codes, name


def test_token_views_list_their_401_and_take_json_only(schema):
    for route in ("/api/auth/token/", "/api/auth/token/refresh/"):
        operation = schema["paths"][route]["post"]
        assert "401" in operation["responses"]
        assert list(operation["requestBody"]["content"]) == ["application/json"]


def test_request_strings_state_what_drf_refuses(schema):
    title = component(schema, schema["paths"]["/api/projects/"]["post"]["requestBody"]["content"])
    assert title["properties"]["title"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "pattern": NOT_BLANK,
    }
    # Responses are not constrained: a stored title is whatever was accepted.
    project = schema["components"]["schemas"]["Project"]["properties"]["title"]
    assert "pattern" not in project


def test_a_delete_body_and_a_whole_patch_body_are_documented(schema):
    members = schema["paths"]["/api/chat/rooms/{room_id}/members/"]["delete"]
    assert component(schema, members["requestBody"]["content"])["required"] == ["user_id"]
    status = schema["paths"]["/api/tasks/{task_id}/status/"]["patch"]
    assert status["requestBody"]["required"] is True
    assert component(schema, status["requestBody"]["content"])["required"] == ["status"]


def test_exactly_one_receiver_or_room_is_a_one_of(schema):
    send = schema["paths"]["/api/chat/messages/"]["post"]
    body = component(schema, send["requestBody"]["content"])
    assert [branch["required"] for branch in body["oneOf"]] == [["receiver_id"], ["room_id"]]
    assert all("nullable" not in str(branch) for branch in body["oneOf"])
    history = schema["paths"]["/api/chat/messages/"]["get"]["parameters"][0]
    assert (history["style"], history["explode"], history["required"]) == ("form", True, True)
    assert [branch["required"] for branch in history["schema"]["oneOf"]] == [["with"], ["room"]]


def test_an_unmatched_api_url_is_a_json_404_and_other_urls_keep_the_page(client, make_user):
    api = authed_client(make_user()).get("/api/tasks/not-a-number/")
    assert api.status_code == 404
    assert api["Content-Type"] == "application/json"
    assert api.json() == {"detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("value", ["abc", "", "1.5"])
def test_an_after_seq_that_is_not_an_integer_is_a_400(make_user, value):
    response = authed_client(make_user()).get("/api/events/", {"after_seq": value})

    assert response.status_code == 400
    assert response.json() == {"after_seq": ["A valid integer is required."]}


def test_events_after_seq_lists_only_the_later_ones(make_user):
    user = make_user()
    now = timezone.now()
    for seq in (1, 2, 3):
        Event.objects.create(user=user, seq=seq, type="notification", payload={}, created_at=now)

    response = authed_client(user).get("/api/events/", {"after_seq": 1})

    assert [event["seq"] for event in response.json()["results"]] == [2, 3]


class _Body(serializers.Serializer):
    name = serializers.CharField()


class _Items(GenericAPIView):
    serializer_class = _Body

    def delete(self, request):  # no body
        return Response(status=204)

    @extend_schema(request=_Body(partial=True), responses=_Body)
    def patch(self, request):  # a partial update, declared as one
        return Response()


class _Item(APIView):
    @extend_schema(request=_Body, responses={204: None})
    def delete(self, request, item_id: int):  # a body, declared
        return Response(status=204)

    @extend_schema(request=_Body, responses=_Body)
    def patch(self, request, item_id: int):  # a whole body
        return Response()


class _Settings(UpdateAPIView):
    serializer_class = _Body  # DRF's PATCH here is a partial update


def test_delete_bodies_and_partial_patch_bodies_are_what_the_view_declares():
    generated = SchemaGenerator(
        patterns=[
            path("items/", _Items.as_view()),
            path("items/<int:item_id>/", _Item.as_view()),
            path("settings/", _Settings.as_view()),
        ]
    ).get_schema(request=None, public=True)
    items, item = generated["paths"]["/items/"], generated["paths"]["/items/{item_id}/"]
    settings_patch = generated["paths"]["/settings/"]["patch"]["requestBody"]
    components = generated["components"]["schemas"]

    assert "requestBody" not in items["delete"]
    assert item["delete"]["requestBody"]["required"] is True
    assert "required" not in components["Patched_BodyRequest"]
    assert "requestBody" in items["patch"] and item["patch"]["requestBody"]["required"] is True
    assert components["_BodyRequest"]["required"] == ["name"]
    assert settings_patch["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Patched_BodyRequest"
    )
