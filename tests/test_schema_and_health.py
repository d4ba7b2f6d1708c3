"""OpenAPI covers every REST path of SPEC §7; health, readiness and metrics answer."""

import re

import pytest
import yaml

from conftest import authed_client

pytestmark = pytest.mark.django_db

SPEC_PATHS = {
    "/api/auth/token/": {"post"},
    "/api/auth/token/refresh/": {"post"},
    "/api/auth/logout/": {"post"},
    "/api/me/": {"get"},
    "/api/users/": {"get"},
    "/api/projects/": {"get", "post"},
    "/api/projects/{id}/": {"get"},
    "/api/tasks/": {"get", "post"},
    "/api/tasks/{id}/": {"get"},
    "/api/tasks/{id}/status/": {"patch"},
    "/api/chat/conversations/": {"get"},
    "/api/chat/messages/": {"get", "post"},
    "/api/chat/messages/{id}/read/": {"post"},
    "/api/chat/messages/{id}/": {"patch", "delete"},
    "/api/chat/attachments/": {"post"},
    "/api/chat/attachments/{id}/": {"get"},
    "/api/chat/attachments/{id}/download/": {"get"},
    "/api/chat/unread/": {"get"},
    "/api/chat/rooms/": {"get", "post"},
    "/api/chat/rooms/{id}/members/": {"post", "delete"},
    "/api/presence/": {"get"},
    "/api/notifications/": {"get"},
    "/api/notifications/{id}/read/": {"post"},
    "/api/notifications/read-all/": {"post"},
    "/api/events/": {"get"},
}


def test_schema_describes_every_endpoint_with_request_and_response_shapes(make_user):
    response = authed_client(make_user("alice")).get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = {re.sub(r"\{\w+\}", "{id}", path): ops for path, ops in schema["paths"].items()}
    for path, methods in SPEC_PATHS.items():
        assert path in paths, f"{path} missing from the schema"
        assert methods <= set(paths[path]), f"{path}: {methods - set(paths[path])}"
        for method in methods:
            operation = paths[path][method]
            assert operation.get("responses"), f"{method} {path} has no responses"
            if method in {"post", "patch"} and path not in {
                "/api/chat/messages/{id}/read/",
                "/api/notifications/{id}/read/",
                "/api/notifications/read-all/",
            }:
                assert "requestBody" in operation, f"{method} {path} has no request body"


def test_docs_page_is_served_with_local_assets(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert "cdn.jsdelivr" not in page.content.decode()
    assert "/static/drf_spectacular_sidecar/" in page.content.decode()


def test_healthz_and_readyz(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "redis": True}


def test_readyz_names_what_failed(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failed"] == ["redis"]


def test_metrics_are_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    body = response.content.decode()
    for name in (
        "qw_open_connections",
        "qw_frames_in_total",
        "qw_events_published_total",
        "qw_delivery_latency_seconds",
        "qw_rate_limited_total",
    ):
        assert name in body


def _metric(body: str, name: str) -> float:
    for line in body.splitlines():
        if line.startswith((name + " ", name + "{")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.django_db(transaction=True)
async def test_metrics_count_frames_and_delivery_latency(amake_user, open_socket):
    from asgiref.sync import sync_to_async
    from django.test import Client

    from conftest import token_for

    get_metrics = sync_to_async(lambda: Client().get("/metrics").content.decode())
    before = await get_metrics()
    alice, bob = await amake_user("alice"), await amake_user("bob")
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    await alice_socket.send({"type": "chat_message", "receiver_id": bob.id, "content": "hi"})
    await bob_socket.receive_type("chat_message")
    await alice_socket.receive_type("chat_message")
    after = await get_metrics()
    latency = "qw_delivery_latency_seconds_count"
    assert _metric(after, latency) >= _metric(before, latency) + 2
    sent = 'qw_frames_out_total{type="chat_message"}'
    assert _metric(after, sent) >= _metric(before, sent) + 2
    received = 'qw_frames_in_total{type="chat_message"}'
    assert _metric(after, received) == _metric(before, received) + 1
    assert _metric(after, "qw_open_connections") >= 2
