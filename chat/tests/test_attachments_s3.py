"""Attachments in an S3-compatible bucket (QW_S3_BUCKET), against a real S3 server.

The server is moto's (`moto[server]`, a dev requirement): a separate process
that speaks the S3 HTTP API, as MinIO or AWS would; our server process talks to
it through django-storages and boto3 as it would in production.
"""

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import boto3
import pytest

from chat.models import Attachment
from chat.services import message_send
from conftest import token_for
from testkit.infra import free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
KEYS = {"aws_access_key_id": "qw-test", "aws_secret_access_key": "qw-test-secret"}


@pytest.fixture
def s3_endpoint():
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                log.seek(0)
                pytest.fail(f"moto server did not start: {log.read()[-2000:]!r}")
            time.sleep(0.2)
    yield endpoint
    process.terminate()
    process.wait(10)


def _post_file(url: str, token: str, name: str, data: bytes) -> dict:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url,
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
        return json.loads(response.read())


def test_upload_download_and_delete_through_an_s3_bucket(make_user, servers, s3_endpoint):
    alice, bob = make_user("alice"), make_user("bob")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **KEYS)
    s3.create_bucket(Bucket="qw-files")
    server = servers(
        QW_S3_BUCKET="qw-files",
        QW_S3_ENDPOINT_URL=s3_endpoint,
        QW_S3_REGION="us-east-1",
        QW_S3_ACCESS_KEY_ID=KEYS["aws_access_key_id"],
        QW_S3_SECRET_ACCESS_KEY=KEYS["aws_secret_access_key"],
        QW_S3_PREFIX="uploads",
    )
    data = b"%PDF-1.4\n" + bytes(range(256)) * 2000 + b"%%EOF\n"

    uploaded = _post_file(
        f"{server.http_url}/api/chat/attachments/", token_for(alice), "brief.pdf", data
    )

    assert uploaded["content_type"] == "application/pdf"
    key = Attachment.objects.get(id=uploaded["id"]).file.name
    stored = s3.get_object(Bucket="qw-files", Key=f"uploads/{key}")["Body"].read()
    assert stored == data
    sent = message_send(
        sender_id=alice.id, receiver_id=bob.id, content="brief", attachment_ids=[uploaded["id"]]
    )
    request = urllib.request.Request(
        f"{server.http_url}/api/chat/attachments/{uploaded['id']}/",
        headers={"Authorization": f"Bearer {token_for(bob)}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        link = json.loads(response.read())["url"]
    with urllib.request.urlopen(f"{server.http_url}{link}", timeout=30) as response:
        assert response.read() == data
        assert response.headers["Content-Disposition"] == 'attachment; filename="brief.pdf"'

    delete = urllib.request.Request(
        f"{server.http_url}/api/chat/messages/{sent.message_id}/",
        method="DELETE",
        headers={"Authorization": f"Bearer {token_for(alice)}"},
    )
    with urllib.request.urlopen(delete, timeout=10) as response:
        assert response.status == 204
    assert s3.list_objects_v2(Bucket="qw-files").get("KeyCount", 0) == 0
