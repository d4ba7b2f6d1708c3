"""Someone else's object looks exactly like no object (SPEC §5 Groups, §7).

Generated from the URL conf and the subscription kinds: for every route
with an object id in its path, every method, and every subscription kind,
a user with no right to the object gets the same status and the same body
bytes (the same `error` frame on the socket) for a foreign id as for an
unknown one. A new detail route or subscription kind with an id of a kind
this module does not know fails the test until it is added here.
"""

from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Max
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from chat.attachments import attachment_create
from chat.models import Attachment, ChatMessage, Room, RoomMembership
from conftest import authed_client, token_for
from notifications.models import Notification
from realtime import registry
from tasks.models import Project, Task

MODEL_OF_PARAM = {
    "message_id": ChatMessage,
    "room_id": Room,
    "notification_id": Notification,
    "project_id": Project,
    "task_id": Task,
    "attachment_id": Attachment,
}
# A download link is its own credential: without a valid one every id is refused alike.
STATUS_OF_ROUTE = {"api/chat/attachments/<int:attachment_id>/download/": (403,)}
MODEL_OF_KIND = {"task": Task, "project": Project, "room": Room}
BODIES = {
    "post": [None, {"user_id": 1}],
    "delete": [None, {"user_id": 1}],
    "patch": [None, {"status": "in_progress"}, {"content": "edited"}],
}


def detail_routes() -> list[tuple[str, str, list[str]]]:
    """(route template, param, methods) for every URL with an object id in its path."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern) and route.startswith("api/"):
                params = list(entry.pattern.converters)
                if params:
                    view = entry.callback.cls
                    methods = [
                        m
                        for m in view.http_method_names
                        if m not in {"options", "head"} and hasattr(view, m)
                    ]
                    found.append((route, params, methods))

    walk(get_resolver().url_patterns, "")
    return found


@dataclass
class World:
    viewers: list
    foreign: dict  # model → [ids the viewers may not see]
    unknown: dict  # model → an id that does not exist


def build_world(make_user) -> World:
    owner, other, stranger, neighbour = (
        make_user(name) for name in ("owner", "other", "stranger", "neighbour")
    )
    project = Project.objects.create(author=owner, title="theirs")
    task = Task.objects.create(project=project, title="theirs", freelancer=other)
    # The neighbour works on another task of the same project: the project is
    # theirs to see, its other tasks are not.
    Task.objects.create(project=project, title="mine", freelancer=neighbour)
    lone_project = Project.objects.create(author=other, title="alone")
    lone_task = Task.objects.create(project=lone_project, title="alone")
    room = Room.objects.create(name="theirs", created_by=owner)
    RoomMembership.objects.create(room=room, user=owner)
    pair_room = Room.objects.create(name="pair", created_by=other)
    RoomMembership.objects.create(room=pair_room, user=other)
    RoomMembership.objects.create(room=pair_room, user=owner)
    own_room = Room.objects.create(name="mine", created_by=neighbour)
    RoomMembership.objects.create(room=own_room, user=neighbour)
    direct = ChatMessage.objects.create(
        sender=owner, receiver=other, content="x", created_at=timezone.now()
    )
    in_room = ChatMessage.objects.create(
        sender=owner, room=room, content="x", created_at=timezone.now()
    )
    sent_file = attachment_create(uploader_id=owner.id, upload=SimpleUploadedFile("a.txt", b"a"))
    Attachment.objects.filter(id=sent_file.id).update(message=direct)
    unsent_file = attachment_create(uploader_id=owner.id, upload=SimpleUploadedFile("b.txt", b"b"))
    notification = Notification.objects.create(user=owner, title="t", message="m")
    read = Notification.objects.create(user=other, title="t", message="m", read_at=timezone.now())
    Notification.objects.create(user=neighbour, title="mine", message="m")
    foreign = {
        ChatMessage: [direct.id, in_room.id],
        Room: [room.id, pair_room.id],
        Notification: [notification.id, read.id],
        Project: [lone_project.id],
        Task: [task.id, lone_task.id],
        Attachment: [sent_file.id, unsent_file.id],
    }
    unknown = {
        model: (model.objects.aggregate(top=Max("id"))["top"] or 0) + 10_000 for model in foreign
    }
    return World([stranger, neighbour], foreign, unknown)


@pytest.mark.django_db
def test_a_foreign_object_answers_like_an_unknown_one_on_every_detail_route(make_user):
    world = build_world(make_user)
    routes = detail_routes()
    assert {param for _, params, _ in routes for param in params} <= set(MODEL_OF_PARAM), routes
    differing, pairs = [], 0
    for route, params, methods in routes:
        (param,) = params
        model = MODEL_OF_PARAM[param]
        template = "/" + route.replace(f"<int:{param}>", "{}")
        for viewer in world.viewers:
            client = authed_client(viewer)
            for method in methods:
                for body in BODIES.get(method, [None]):

                    def ask(object_id, client=client, method=method, template=template, body=body):
                        response = getattr(client, method)(
                            template.format(object_id), body, format="json"
                        )
                        return response.status_code, response.content

                    unknown = ask(world.unknown[model])
                    expected = STATUS_OF_ROUTE.get(route, (400, 404))
                    assert unknown[0] in expected, (route, method, unknown)
                    for foreign_id in world.foreign[model]:
                        pairs += 1
                        if ask(foreign_id) != unknown:
                            differing.append((route, method, body, viewer.username, foreign_id))
    assert differing == []
    assert pairs >= 40  # a floor: routes, viewers or objects silently dropped fail here
    print(f"object pairs checked over REST paths: {pairs}")


@pytest.mark.django_db
def test_a_foreign_object_given_in_a_query_or_body_answers_like_an_unknown_one(make_user):
    world = build_world(make_user)
    receiver = world.viewers[0].id
    requests = [
        ("get", "/api/chat/messages/?room={}", None, Room),
        ("post", "/api/chat/messages/", lambda i: {"room_id": i, "content": "hi"}, Room),
        ("post", "/api/tasks/", lambda i: {"project": i, "title": "t"}, Project),
        (
            "post",
            "/api/chat/messages/",
            lambda i: {"receiver_id": receiver, "content": "hi", "attachment_ids": [i]},
            Attachment,
        ),
    ]
    for viewer in world.viewers:
        client = authed_client(viewer)
        for method, url, body, model in requests:
            answers = []
            for object_id in (world.unknown[model], world.foreign[model][0]):
                response = getattr(client, method)(
                    url.format(object_id), body and body(object_id), format="json"
                )
                # a field error names the id it refused: compare with the id masked
                answers.append(
                    (response.status_code, response.content.replace(str(object_id).encode(), b"ID"))
                )
            assert answers[0] == answers[1], (viewer.username, method, url, answers)
            assert answers[0][0] in (400, 404)


@pytest.mark.django_db(transaction=True)
async def test_a_subscription_to_a_foreign_object_is_the_same_forbidden_as_an_unknown_one(
    make_user, open_socket
):
    from asgiref.sync import sync_to_async

    world = await sync_to_async(build_world)(make_user)
    assert set(registry.subscription_kinds) <= set(MODEL_OF_KIND)
    pairs = 0
    for viewer in world.viewers:
        socket = await open_socket(token=await sync_to_async(token_for)(viewer))
        for kind in registry.subscription_kinds:
            model = MODEL_OF_KIND[kind]
            await socket.send({"type": "subscribe", "channel": f"{kind}:{world.unknown[model]}"})
            unknown = await socket.receive_type("error")
            assert unknown["code"] == "forbidden"
            for foreign_id in world.foreign[model]:
                await socket.send({"type": "subscribe", "channel": f"{kind}:{foreign_id}"})
                assert await socket.receive_type("error") == unknown, (viewer.username, kind)
                pairs += 1
        await socket.send({"type": "ping"})
        await socket.receive_type("pong")
    assert pairs == 2 * sum(
        len(world.foreign[MODEL_OF_KIND[kind]]) for kind in registry.subscription_kinds
    )
