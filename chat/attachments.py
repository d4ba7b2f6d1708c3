"""Attachments (SPEC §11): upload, signed download links, claiming by a send, pruning.

Files live in Django's default storage (`STORAGES["default"]`: the data dir,
or an S3-compatible bucket). A file is reachable only through a link signed
with the server's secret that names the attachment and expires after
`QW_ATTACHMENT_URL_SECONDS`; links are handed only to the participants of the
message that carries the file (and to the uploader before that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import puremagic
from django.conf import settings
from django.core import signing
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Case, Q, When
from django.urls import reverse
from django.utils import timezone

from chat.models import Attachment, RoomMembership

MAX_ATTACHMENTS_PER_MESSAGE = 10
UNATTACHED_LIFETIME = timedelta(days=1)
_SALT = "chat.attachment"
# Served with their own type; anything else (HTML, SVG, XML, scripts, unknown)
# as application/octet-stream, so no browser ever renders it as a page.
_INERT_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "application/zip",
        "text/plain",
    }
)
_IMAGE_PREVIEW_BYTES = 8192


class LinkRefused(Exception):
    """A download link that is forged, altered or expired."""


@dataclass(frozen=True)
class StoredFile:
    id: int
    name: str
    size: int
    content_type: str

    def payload(self) -> dict[str, Any]:
        return attachment_payload(
            attachment_id=self.id, name=self.name, size=self.size, content_type=self.content_type
        )


def sniff_content_type(upload: UploadedFile) -> str:
    """The type the bytes say (puremagic reads the head and the tail), never the name's."""
    try:
        if hasattr(upload, "temporary_file_path"):
            return puremagic.from_file(upload.temporary_file_path(), mime=True) or _unknown(upload)
        upload.seek(0)
        data = upload.read()
        upload.seek(0)
        return puremagic.from_string(data, mime=True) or _unknown(upload)
    except (puremagic.PureError, ValueError):
        return _unknown(upload)


def _unknown(upload: UploadedFile) -> str:
    """No magic number: UTF-8 text is text/plain, anything else is opaque bytes."""
    upload.seek(0)
    head = upload.read(_IMAGE_PREVIEW_BYTES)
    upload.seek(0)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return "application/octet-stream"
    return "text/plain" if b"\x00" not in head else "application/octet-stream"


def served_content_type(content_type: str) -> str:
    return content_type if content_type in _INERT_TYPES else "application/octet-stream"


def _display_name(raw: str | None) -> str:
    """The client's file name, shown to people and offered as the download name only."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).strip()
    return name[:255] or "file"


def attachment_create(*, uploader_id: int, upload: UploadedFile) -> Attachment:
    """Store an uploaded file (not yet attached to a message)."""
    content_type = sniff_content_type(upload)
    attachment = Attachment(
        uploader_id=uploader_id,
        name=_display_name(upload.name),
        size=upload.size or 0,
        content_type=content_type,
    )
    # The storage write first: a failed write leaves no row, a failed insert
    # leaves an orphan file that no row names (harmless, never served).
    attachment.file.save(attachment.name, upload, save=False)
    attachment.save()
    return attachment


# --- links ----------------------------------------------------------------------------
def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SALT)


def attachment_url(attachment_id: int) -> str:
    """A fresh download link, valid QW_ATTACHMENT_URL_SECONDS."""
    token = _signer().sign(str(attachment_id)).split(":", 1)[1]
    path = reverse("chat-attachment-download", kwargs={"attachment_id": attachment_id})
    return f"{path}?token={token}"


def attachment_from_link(*, attachment_id: int, token: str) -> Attachment:
    """The attachment a link names, or LinkRefused (forged, altered, expired, gone)."""
    try:
        signed = _signer().unsign(
            f"{attachment_id}:{token}", max_age=settings.QW_ATTACHMENT_URL_SECONDS
        )
    except signing.SignatureExpired:
        raise LinkRefused("This link has expired.") from None
    except signing.BadSignature:
        raise LinkRefused("This link is not valid.") from None
    if signed != str(attachment_id):
        raise LinkRefused("This link is not valid.")
    attachment = Attachment.objects.filter(id=attachment_id).first()
    if attachment is None:
        raise LinkRefused("This file is gone.")
    return attachment


def attachment_payload(
    *, attachment_id: int, name: str, size: int, content_type: str
) -> dict[str, Any]:
    return {
        "id": attachment_id,
        "name": name,
        "size": size,
        "content_type": content_type,
        "url": attachment_url(attachment_id),
    }


def with_fresh_urls(attachments: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored payloads carry links that have long expired: sign them again (no query)."""
    return [{**item, "url": attachment_url(item["id"])} for item in attachments]


def attachment_for_participant(*, user_id: int, attachment_id: int) -> Attachment | None:
    """The attachment if the user may see it: its uploader, or a participant of its message.

    None for unknown, foreign, and deleted-message attachments alike (→ 404).
    """
    attachment = (
        Attachment.objects.filter(id=attachment_id)
        .select_related("message")
        .only(
            "id",
            "uploader_id",
            "name",
            "size",
            "content_type",
            "message__id",
            "message__sender_id",
            "message__receiver_id",
            "message__room_id",
            "message__is_hidden",
        )
        .first()
    )
    if attachment is None:
        return None
    message = attachment.message
    if message is None:
        return attachment if attachment.uploader_id == user_id else None
    if message.is_hidden:
        return None
    if user_id in (message.sender_id, message.receiver_id):
        return attachment
    if (
        message.room_id is not None
        and RoomMembership.objects.filter(room_id=message.room_id, user_id=user_id).exists()
    ):
        return attachment
    return None


# --- claiming by a send (inside messages_send_batch's transaction) ---------------------
def attachments_lock(
    attachment_ids: Iterable[int],
) -> dict[int, tuple[int, int | None, StoredFile]]:
    """id → (uploader, message, file) of the given attachments, locked until commit.

    The row lock makes two sends that name the same upload take turns: the
    second sees it attached and is refused.
    """
    ids = sorted(set(attachment_ids))
    if not ids:
        return {}
    rows = (
        Attachment.objects.select_for_update()
        .filter(id__in=ids)
        .order_by("id")
        .values_list("id", "uploader_id", "message_id", "name", "size", "content_type")
    )
    return {row[0]: (row[1], row[2], StoredFile(row[0], row[3], row[4], row[5])) for row in rows}


def claimable(
    locked: dict[int, tuple[int, int | None, StoredFile]],
    *,
    sender_id: int,
    attachment_ids: Sequence[int],
) -> list[StoredFile] | None:
    """The files if every id is the sender's own upload not yet attached; else None."""
    files = []
    for attachment_id in attachment_ids:
        entry = locked.get(attachment_id)
        if entry is None or entry[0] != sender_id or entry[1] is not None:
            return None
        files.append(entry[2])
    return files


def attachments_attach(claims: Sequence[tuple[int, Sequence[int]]]) -> None:
    """(message_id, attachment_ids) pairs: one UPDATE for the whole batch."""
    pairs = [(attachment_id, message_id) for message_id, ids in claims for attachment_id in ids]
    if not pairs:
        return
    Attachment.objects.filter(id__in=[a for a, _ in pairs]).update(
        message_id=Case(*(When(id=a, then=m) for a, m in pairs))
    )


# --- removal -----------------------------------------------------------------------------
def _delete_files_on_commit(names: list[str]) -> None:
    def delete() -> None:
        storage = Attachment._meta.get_field("file").storage
        for name in names:
            storage.delete(name)

    if names:
        transaction.on_commit(delete, robust=True)


def attachments_delete_of_messages(message_ids: Sequence[int]) -> int:
    """A deleted message's files go with it (rows now, files after commit)."""
    attachments = Attachment.objects.filter(message_id__in=list(message_ids))
    names = list(attachments.values_list("file", flat=True))
    attachments.delete()
    _delete_files_on_commit(names)
    return len(names)


def attachments_prune(*, older_than: timedelta = UNATTACHED_LIFETIME) -> int:
    """Uploads never attached to a message, older than a day: rows and files."""
    cutoff = timezone.now() - older_than
    with transaction.atomic():
        stale = Attachment.objects.select_for_update(skip_locked=True).filter(
            Q(message__isnull=True), created_at__lt=cutoff
        )
        rows = list(stale.values_list("id", "file"))
        Attachment.objects.filter(id__in=[row[0] for row in rows]).delete()
        _delete_files_on_commit([row[1] for row in rows])
    return len(rows)
