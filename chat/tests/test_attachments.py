"""Attachments (SPEC §11): upload, send, signed download links, limits, pruning."""

import contextlib
import io
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.core.files.storage import storages
from django.core.management import call_command
from django.utils import timezone

from chat.models import Attachment, ChatMessage
from chat.services import message_send, room_create
from conftest import authed_client, token_for
from realtime.models import Event

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD = "/api/chat/attachments/"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + b"1 0 obj << >> endobj\n" * 50 + b"%%EOF\n"


def upload(user, data: bytes = PNG, name: str = "design.png") -> dict:
    response = authed_client(user).post(
        UPLOAD,
        {"file": io.BytesIO(data) if name is None else named(data, name)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()


def named(data: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def download(url: str):
    """Follow a signed link as a browser does: no credentials, only the link."""
    from django.test import Client

    return Client().get(url)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content)


def stored_files() -> list[Path]:
    root = Path(storages["default"].location)
    return sorted(path for path in root.rglob("*") if path.is_file())


@pytest.fixture
def trio(make_user):
    return make_user("alice"), make_user("bob"), make_user("carol")


def test_upload_then_send_and_the_receiver_downloads_the_same_bytes(trio):
    alice, bob, _ = trio
    uploaded = upload(alice, PDF, "invoice.png")  # the name lies; the bytes decide

    assert set(uploaded) == {"id", "name", "size", "content_type", "url"}
    assert (uploaded["name"], uploaded["size"], uploaded["content_type"]) == (
        "invoice.png",
        len(PDF),
        "application/pdf",
    )
    sent = authed_client(alice).post(
        "/api/chat/messages/",
        {"receiver_id": bob.id, "content": "the invoice", "attachment_ids": [uploaded["id"]]},
        format="json",
    )
    assert sent.status_code == 201
    message_id = sent.json()["message_id"]

    # bob's inbox event and history both list it, each with a link that works
    event = Event.objects.get(user=bob, type="chat_message").payload
    [listed] = event["attachments"]
    assert {k: listed[k] for k in ("id", "name", "size", "content_type")} == {
        "id": uploaded["id"],
        "name": "invoice.png",
        "size": len(PDF),
        "content_type": "application/pdf",
    }
    history = authed_client(bob).get("/api/chat/messages/", {"with": alice.id}).json()
    [message] = history["results"]
    assert message["message_id"] == message_id
    for url in (listed["url"], message["attachments"][0]["url"]):
        response = download(url)
        assert response.status_code == 200
        assert body_of(response) == PDF
        assert response["Content-Disposition"] == 'attachment; filename="invoice.png"'
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Type"] == "application/pdf"
    # a fresh link for a participant
    fresh = authed_client(bob).get(f"{UPLOAD}{uploaded['id']}/")
    assert fresh.status_code == 200
    assert body_of(download(fresh.json()["url"])) == PDF


@pytest.mark.parametrize(
    ("data", "name", "sniffed"),
    [
        (
            b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>",
            "page.html",
            "text/html",
        ),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "logo.svg",
            "image/svg+xml",
        ),
    ],
)
def test_html_and_svg_are_only_ever_served_as_downloads(trio, data, name, sniffed):
    alice, _, _ = trio
    uploaded = upload(alice, data, name)
    assert uploaded["content_type"] == sniffed

    response = download(uploaded["url"])

    assert response.status_code == 200
    assert body_of(response) == data
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_a_strangers_get_is_a_404_and_an_unknown_id_too(trio):
    alice, bob, carol = trio
    uploaded = upload(alice)
    message_send(
        sender_id=alice.id, receiver_id=bob.id, content="f", attachment_ids=[uploaded["id"]]
    )
    assert authed_client(carol).get(f"{UPLOAD}{uploaded['id']}/").status_code == 404
    assert authed_client(carol).get(f"{UPLOAD}{10**9}/").status_code == 404
    # before it is sent, only its uploader sees it
    unsent = upload(alice)
    assert authed_client(bob).get(f"{UPLOAD}{unsent['id']}/").status_code == 404
    assert authed_client(alice).get(f"{UPLOAD}{unsent['id']}/").status_code == 200


def test_room_members_see_it_and_a_removed_member_does_not(trio):
    alice, bob, carol = trio
    room = room_create(creator_id=alice.id, name="team", member_ids=[bob.id, carol.id])
    uploaded = upload(alice)
    message_send(sender_id=alice.id, room_id=room.id, content="f", attachment_ids=[uploaded["id"]])
    assert authed_client(carol).get(f"{UPLOAD}{uploaded['id']}/").status_code == 200
    authed_client(alice).delete(
        f"/api/chat/rooms/{room.id}/members/", {"user_id": carol.id}, format="json"
    )
    assert authed_client(carol).get(f"{UPLOAD}{uploaded['id']}/").status_code == 404


@contextlib.contextmanager
def signing_in_the_past(seconds: int):
    """Links signed now carry a timestamp `seconds` old, as if handed out back then."""
    then = signing.b62_encode(int(time.time()) - seconds)
    with mock.patch.object(signing.TimestampSigner, "timestamp", lambda self: then):
        yield


def test_an_expired_link_is_refused(trio, settings):
    alice, _, _ = trio
    with signing_in_the_past(settings.QW_ATTACHMENT_URL_SECONDS + 1):
        uploaded = upload(alice)
    response = download(uploaded["url"])
    assert response.status_code == 403
    assert response.json() == {"detail": "This link has expired."}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url, other: url.replace(url.split("/")[4], str(other)),  # another attachment's id
        lambda url, other: (
            url[:-1] + ("A" if url[-1] != "A" else "B")
        ),  # one character of the signature
        lambda url, other: url.split("?")[0] + "?token=" + "x" * 20 + ":" + "y" * 27,  # forged
        lambda url, other: url.split("?")[0],  # no token
    ],
)
def test_a_forged_or_altered_link_is_refused(trio, tamper):
    alice, _, _ = trio
    uploaded, other = upload(alice), upload(alice)
    response = download(tamper(uploaded["url"], other["id"]))
    assert response.status_code == 403
    assert response.json() == {"detail": "This link is not valid."}


def test_over_the_limit_is_a_413_with_nothing_stored(trio, settings):
    alice, _, _ = trio
    files_before = stored_files()
    limit = settings.QW_ATTACHMENT_MAX_BYTES
    assert limit == 10 * 1024 * 1024
    response = authed_client(alice).post(
        UPLOAD, {"file": named(b"x" * (limit + 1), "big.bin")}, format="multipart"
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "The file is larger than the upload limit."}
    assert Attachment.objects.count() == 0
    assert stored_files() == files_before
    # exactly the limit is fine
    assert upload(alice, b"y" * limit, "exact.bin")["size"] == limit


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"file": ["No file was submitted."]}),
        (
            {"file": "not a file"},
            {"file": ["The submitted data was not a file. Check the encoding type on the form."]},
        ),
    ],
)
def test_an_upload_without_a_file_is_a_400(trio, body, errors):
    alice, _, _ = trio
    response = authed_client(alice).post(UPLOAD, body, format="multipart")
    assert response.status_code == 400
    assert response.json() == errors
    assert Attachment.objects.count() == 0


def test_an_upload_as_json_is_a_415(trio):
    alice, _, _ = trio
    response = authed_client(alice).post(UPLOAD, {"file": "x"}, format="json")
    assert response.status_code == 415
    assert Attachment.objects.count() == 0


def test_an_upload_needs_a_token(api_client):
    assert (
        api_client.post(UPLOAD, {"file": named(PNG, "a.png")}, format="multipart").status_code
        == 401
    )


def _send(user, **frame):
    return authed_client(user).post("/api/chat/messages/", {"content": "f", **frame}, format="json")


def test_someone_elses_or_a_sent_attachment_is_refused_and_nothing_is_stored(trio):
    alice, bob, carol = trio
    bobs = upload(bob)
    mine = upload(alice)
    message_send(
        sender_id=alice.id, receiver_id=carol.id, content="sent", attachment_ids=[mine["id"]]
    )
    fresh = upload(alice)
    before = ChatMessage.objects.count(), Event.objects.count()
    for ids in ([bobs["id"]], [mine["id"]], [fresh["id"], 10**9], [fresh["id"], bobs["id"]]):
        response = _send(alice, receiver_id=bob.id, attachment_ids=ids)
        assert response.status_code == 400
        assert response.json() == {
            "attachment_ids": ["Every attachment must be your own upload that is not sent yet."]
        }
    assert (ChatMessage.objects.count(), Event.objects.count()) == before
    assert Attachment.objects.get(id=fresh["id"]).message_id is None


@pytest.mark.parametrize(
    ("ids", "errors"),
    [
        (
            list(range(1, 12)),
            {"attachment_ids": ["Ensure this field has no more than 10 elements."]},
        ),
        ([1, 1], {"attachment_ids": ["An attachment can be sent only once."]}),
        (["a"], {"attachment_ids": {"0": ["A valid integer is required."]}}),
        ([0], {"attachment_ids": {"0": ["Ensure this value is greater than or equal to 1."]}}),
        ("1", {"attachment_ids": ['Expected a list of items but got type "str".']}),
    ],
)
def test_malformed_attachment_ids_over_rest_are_a_400(trio, ids, errors):
    alice, bob, _ = trio
    response = _send(alice, receiver_id=bob.id, attachment_ids=ids)
    assert response.status_code == 400
    assert response.json() == errors
    assert ChatMessage.objects.count() == 0


async def test_on_the_socket_someone_elses_attachment_is_invalid_message(amake_user, open_socket):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    bobs = await sync_to_async(upload)(bob)
    socket = await open_socket(token=token_for(alice))

    await socket.send(
        {
            "type": "chat_message",
            "receiver_id": bob.id,
            "content": "yours",
            "client_msg_id": "a1",
            "attachment_ids": [bobs["id"]],
        }
    )
    error = await socket.receive_type("error")
    assert error == {
        "type": "error",
        "code": "invalid_message",
        "message": "every attachment must be your own upload that is not sent yet",
        "ref": "a1",
    }
    for bad in ([1] * 11, "1", [True], [-1], [1, 1]):
        await socket.send(
            {"type": "chat_message", "receiver_id": bob.id, "content": "x", "attachment_ids": bad}
        )
        error = await socket.receive_type("error")
        assert error["code"] == "invalid_message"
        assert "attachment_ids" in error["message"]
    assert await sync_to_async(ChatMessage.objects.count)() == 0


async def test_on_the_socket_two_attachments_reach_both_sides(amake_user, open_socket):
    alice, bob = await amake_user("alice"), await amake_user("bob")
    first, second = (
        await sync_to_async(upload)(alice, PNG, "a.png"),
        await sync_to_async(upload)(alice, PDF, "b.pdf"),
    )
    alice_socket = await open_socket(token=token_for(alice))
    bob_socket = await open_socket(token=token_for(bob))
    frame = {
        "type": "chat_message",
        "receiver_id": bob.id,
        "content": "two files",
        "client_msg_id": "two",
        "attachment_ids": [second["id"], first["id"]],
    }
    await alice_socket.send(frame)
    ack = await alice_socket.receive_type("message_sent")
    for socket in (alice_socket, bob_socket):
        message = await socket.receive_type("chat_message")
        assert [(a["id"], a["name"], a["content_type"]) for a in message["attachments"]] == [
            (second["id"], "b.pdf", "application/pdf"),
            (first["id"], "a.png", "image/png"),
        ]
    # a resend of the same client_msg_id is the duplicate, not a refusal
    await alice_socket.send(frame)
    again = await alice_socket.receive_type("message_sent")
    assert (again["message_id"], again["duplicate"]) == (ack["message_id"], True)


def test_a_replay_gives_fresh_links(trio, settings):
    alice, bob, _ = trio
    uploaded = upload(alice)
    with signing_in_the_past(settings.QW_ATTACHMENT_URL_SECONDS + 1):
        message_send(
            sender_id=alice.id, receiver_id=bob.id, content="f", attachment_ids=[uploaded["id"]]
        )
    stored_url = Event.objects.get(user=bob, type="chat_message").payload["attachments"][0]["url"]
    assert download(stored_url).status_code == 403
    [event] = authed_client(bob).get("/api/events/").json()["results"]
    assert download(event["payload"]["attachments"][0]["url"]).status_code == 200


def test_deleting_the_message_removes_its_files(trio):
    alice, bob, _ = trio
    uploaded = upload(alice)
    result = message_send(
        sender_id=alice.id, receiver_id=bob.id, content="f", attachment_ids=[uploaded["id"]]
    )
    assert len(stored_files()) >= 1
    name = Attachment.objects.get(id=uploaded["id"]).file.name

    assert (
        authed_client(alice).delete(f"/api/chat/messages/{result.message_id}/").status_code == 204
    )

    assert not Attachment.objects.filter(id=uploaded["id"]).exists()
    assert not storages["default"].exists(name)
    assert download(uploaded["url"]).status_code == 403


def test_prune_events_removes_uploads_never_sent_after_a_day(trio):
    alice, bob, _ = trio
    old_unsent, old_sent, new_unsent = upload(alice), upload(alice), upload(alice)
    message_send(
        sender_id=alice.id, receiver_id=bob.id, content="f", attachment_ids=[old_sent["id"]]
    )
    Attachment.objects.filter(id__in=[old_unsent["id"], old_sent["id"]]).update(
        created_at=timezone.now() - timedelta(days=1, minutes=1)
    )
    old_name = Attachment.objects.get(id=old_unsent["id"]).file.name
    out = io.StringIO()

    call_command("prune_events", stdout=out)

    assert "deleted 1 unattached uploads" in out.getvalue()
    assert sorted(Attachment.objects.values_list("id", flat=True)) == sorted(
        [old_sent["id"], new_unsent["id"]]
    )
    assert not storages["default"].exists(old_name)


def _multipart(field: str, name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def test_through_a_real_server_process_upload_send_download(trio, servers):
    alice, bob, _ = trio
    server = servers()
    data = PNG * 3000  # about 3 MiB: a temporary file on the way in, streamed on the way out
    body, content_type = _multipart("file", "photo.png", data)
    request = urllib.request.Request(
        f"{server.http_url}{UPLOAD}",
        data=body,
        headers={"Authorization": f"Bearer {token_for(alice)}", "Content-Type": content_type},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        import json

        uploaded = json.loads(response.read())
    message_send(
        sender_id=alice.id, receiver_id=bob.id, content="f", attachment_ids=[uploaded["id"]]
    )
    link = authed_client(bob).get(f"{UPLOAD}{uploaded['id']}/").json()["url"]
    with urllib.request.urlopen(f"{server.http_url}{link}", timeout=30) as response:
        assert response.read() == data
        assert response.headers["Content-Disposition"] == 'attachment; filename="photo.png"'
    # over the limit: refused from the declared length, nothing stored
    big, content_type = _multipart("file", "big.bin", b"z" * (settings.QW_ATTACHMENT_MAX_BYTES + 1))
    request = urllib.request.Request(
        f"{server.http_url}{UPLOAD}",
        data=big,
        headers={"Authorization": f"Bearer {token_for(alice)}", "Content-Type": content_type},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert Attachment.objects.count() == 1
