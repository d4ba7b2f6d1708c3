"""REST under hostile input (issue 9): every client mistake is a 4xx with a clear body.

Each case here was a 500 once: deep nesting (RecursionError), lone
surrogates (UnicodeEncodeError), 1e400 (OverflowError), a cursor whose
position is not a number, `?format=api`; over-size bodies were 400 but
logged a traceback.
"""

import base64
import logging

import pytest
from django.utils import timezone

from chat.models import ChatMessage
from chat.serializers import MessageSendSerializer
from chat.services import CONTENT_NOT_TEXT, clean_content
from conftest import authed_client
from realtime.domain_errors import ContentNotText
from realtime.protocol import frame_error
from tasks.models import Project, Task
from tasks.tests.conftest import build_board

pytestmark = pytest.mark.django_db

DEEP = "[" * 2000 + "]" * 2000
BODY_ROUTES = [
    ("post", "/api/auth/token/"),
    ("post", "/api/auth/token/refresh/"),
    ("post", "/api/auth/logout/"),
    ("post", "/api/chat/messages/"),
    ("patch", "/api/chat/messages/{message}/"),
    ("post", "/api/chat/rooms/"),
    ("post", "/api/chat/rooms/{room}/members/"),
    ("delete", "/api/chat/rooms/{room}/members/"),
    ("post", "/api/projects/"),
    ("post", "/api/tasks/"),
    ("patch", "/api/tasks/{task}/status/"),
]


@pytest.fixture
def board(make_user):
    return build_board(make_user)


@pytest.fixture
def objects(board):
    from chat.models import Room, RoomMembership
    from notifications.models import Notification

    room = Room.objects.create(name="r", created_by=board.author)
    RoomMembership.objects.create(room=room, user=board.author)
    message = ChatMessage.objects.create(
        sender=board.freelancer, receiver=board.author, content="hi", created_at=timezone.now()
    )
    notification = Notification.objects.create(
        user=board.author, notification_type="system", title="t", message="m"
    )
    return {
        "message": message.id,
        "room": room.id,
        "notification": notification.id,
        "task": board.task.id,
    }


@pytest.mark.parametrize(("method", "route"), BODY_ROUTES)
def test_a_body_nested_2000_levels_deep_is_a_400(board, objects, method, route):
    client = authed_client(board.author)
    response = getattr(client, method)(
        route.format(**objects), DEEP, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert "detail" in response.json()


def test_a_lone_surrogate_in_chat_content_is_a_400_and_stores_nothing(board):
    client = authed_client(board.freelancer)
    response = client.post(
        "/api/chat/messages/",
        f'{{"receiver_id": {board.author.id}, "content": "a\\ud800b"}}',
        content_type="application/json",
    )
    # Not JSON that any UTF-8 consumer can hold: refused like the socket refuses it.
    assert response.status_code == 400, response.content[:300]
    assert "surrogate" in response.json()["detail"]
    assert not ChatMessage.objects.exists()


def test_a_lone_surrogate_as_task_status_is_a_400_and_changes_nothing(board):
    response = authed_client(board.freelancer).patch(
        f"/api/tasks/{board.task.id}/status/",
        '{"status": "\\udfff"}',
        content_type="application/json",
    )
    assert response.status_code == 400, response.content[:300]
    assert "surrogate" in response.json()["detail"]
    board.task.refresh_from_db()
    assert board.task.status == "open"


def test_content_with_a_lone_surrogate_is_invalid_text_for_every_caller():
    with pytest.raises(ContentNotText) as refused:
        clean_content("a\ud800b")
    # the service speaks the domain; the socket edge makes it a SPEC §5 error frame
    frame = frame_error(refused.value).as_frame()
    assert (frame["code"], frame["message"]) == ("invalid_message", CONTENT_NOT_TEXT)
    field = MessageSendSerializer(data={"receiver_id": 1, "content": "\udfff"})
    assert not field.is_valid()
    assert field.errors == {"content": ["Not valid Unicode text."]}


def test_an_overflowing_number_as_project_is_a_400(board):
    response = authed_client(board.author).post(
        "/api/tasks/", '{"project": 1e400, "title": "x"}', content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert "infinity" in response.json()["detail"]
    assert Task.objects.count() == 1


def crafted_cursor(position: str) -> str:
    return base64.b64encode(f"o=0&r=0&p={position}".encode()).decode()


@pytest.mark.parametrize(
    "route",
    [
        "/api/events/",
        "/api/notifications/",
        "/api/projects/",
        "/api/tasks/",
        "/api/chat/messages/?with={other}",
    ],
)
@pytest.mark.parametrize("position", ["abc", "1e400", "-", "1.5"])
def test_a_cursor_whose_position_is_not_a_number_is_invalid(board, route, position):
    url = route.format(other=board.freelancer.id)
    separator = "&" if "?" in url else "?"
    response = authed_client(board.author).get(f"{url}{separator}cursor={crafted_cursor(position)}")
    assert response.status_code == 404, response.content[:300]
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize("route", ["/api/tasks/", "/api/chat/messages/", "/api/events/"])
def test_format_api_without_debug_is_not_found(board, route):
    response = authed_client(board.author).get(f"{route}?format=api")
    assert response.status_code == 404, response.content[:300]


def test_an_unknown_format_is_not_found(board):
    response = authed_client(board.author).get("/api/tasks/?format=xml")
    assert response.status_code == 404


def assert_refused_in_one_line(caplog, path):
    refused = [record for record in caplog.records if record.name == "quantumworks.http"]
    assert [record.getMessage().split(":")[0] for record in refused] == [f"refused POST {path}"]
    assert all(record.exc_info is None for record in caplog.records)


def test_an_oversized_body_is_a_400_logged_in_one_line(board, caplog, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    with caplog.at_level(logging.INFO):
        response = authed_client(board.author).post(
            "/api/projects/", '{"title": "%s"}' % ("x" * 2000), content_type="application/json"
        )
    assert response.status_code == 400
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response.json()["detail"]
    assert Project.objects.count() == 1
    assert_refused_in_one_line(caplog, "/api/projects/")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "&".join(f"f{i}=1" for i in range(50)) + "&title=x"),
        (
            "multipart/form-data; boundary=xyz",
            '--xyz\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--xyz--\r\n',
        ),
    ],
)
def test_a_form_body_is_a_415_read_no_further(board, caplog, settings, content_type, body):
    # The API reads JSON only (SPEC §7, issue 20): a form, even one with more
    # fields than Django would parse, is refused before any field is read.
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    with caplog.at_level(logging.INFO):
        response = authed_client(board.author).post(
            "/api/projects/", body, content_type=content_type
        )
    assert response.status_code == 415
    assert response.json() == {"detail": f'Unsupported media type "{content_type}" in request.'}
    assert Project.objects.count() == 1
    assert all(record.exc_info is None for record in caplog.records)


def test_a_server_fault_is_a_500_whose_incident_id_is_on_the_logged_traceback(
    board, caplog, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("tasks.selectors.task_get", broken)
    client = authed_client(board.author)
    client.raise_request_exception = False
    with caplog.at_level(logging.INFO):
        response = client.get(f"/api/tasks/{board.task.id}/")
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"detail", "incident_id"}
    assert len(body["incident_id"]) == 12 and int(body["incident_id"], 16) >= 0
    assert "secret" not in response.content.decode()
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1
    assert f"incident={body['incident_id']}" in tracebacks[0].getMessage()
    assert "secret internal detail" in caplog.text


@pytest.mark.parametrize("query", ["", "?format=json", "?format=%20", "?version=%0D", "?lang=%0D"])
@pytest.mark.parametrize("route", ["/api/docs/", "/api/schema/"])
def test_the_public_docs_ignore_a_bad_token(route, query):
    from django.test import Client

    client = Client(raise_request_exception=False)
    response = client.get(route + query, HTTP_AUTHORIZATION="Bearer garbage")
    assert response.status_code in (200, 404), response.content[:300]


# --- SPEC §11 routes ----------------------------------------------------------------------
def test_a_lone_surrogate_in_an_edit_is_a_400_and_changes_nothing(board, objects):
    response = authed_client(board.freelancer).patch(
        f"/api/chat/messages/{objects['message']}/",
        '{"content": "a\\ud800b"}',
        content_type="application/json",
    )
    assert response.status_code == 400, response.content[:300]
    assert "surrogate" in response.json()["detail"]
    assert ChatMessage.objects.get(id=objects["message"]).content == "hi"


@pytest.mark.parametrize(
    ("content_type", "body", "answer"),
    [
        (
            "multipart/form-data",
            b"--x\r\nbroken",
            {"detail": "Multipart form parse error - Invalid boundary in multipart: None"},
        ),
        (
            "multipart/form-data; boundary=zzz",
            b"no parts at all",
            {"file": ["No file was submitted."]},
        ),
        (
            "multipart/form-data; boundary=zzz",
            b'--zzz\r\nContent-Disposition: form-data; name="file"\r\n\r\ntext, not a file\r\n--zzz--\r\n',
            {"file": ["The submitted data was not a file. Check the encoding type on the form."]},
        ),
    ],
)
def test_a_broken_multipart_upload_is_a_400_and_stores_nothing(board, content_type, body, answer):
    from chat.models import Attachment

    response = authed_client(board.author).generic(
        "POST", "/api/chat/attachments/", body, content_type=content_type
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json() == answer
    assert not Attachment.objects.exists()


@pytest.mark.parametrize(
    ("sent_name", "shown_name"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("a\x00b\x1b[31m.txt", "ab[31m.txt"),
        ("", "file"),
    ],
)
def test_an_upload_name_is_only_shown_never_a_path(board, sent_name, shown_name):
    from chat.models import Attachment

    boundary = "qwboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{sent_name}"\r\n'
        f"Content-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    ).encode()
    response = authed_client(board.author).generic(
        "POST",
        "/api/chat/attachments/",
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    if not sent_name:  # no file name: Django sees a plain field, not a file
        assert response.status_code == 400
        assert not Attachment.objects.exists()
        return
    assert response.status_code == 201, response.content[:300]
    assert response.json()["name"] == shown_name
    stored = Attachment.objects.get()
    assert stored.file.name.startswith("attachments/")
    assert "/" not in stored.file.name.removeprefix("attachments/")
