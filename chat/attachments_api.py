"""Attachments over REST (SPEC §11): upload, a fresh link, the download behind a link."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import (
    FileUploadHandler,
    MemoryFileUploadHandler,
    TemporaryFileUploadHandler,
)
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.attachments import (
    LinkRefused,
    attachment_create,
    attachment_for_participant,
    attachment_from_link,
    attachment_payload,
    served_content_type,
)
from chat.serializers import AttachmentSerializer, AttachmentUploadSerializer
from realtime.rest.openapi import ErrorSerializer

# The multipart envelope around the file (boundaries, part headers): a body
# this much over the limit may still carry a file within it.
_ENVELOPE_BYTES = 16 * 1024


class UploadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The file is larger than the upload limit."
    default_code = "too_large"


class SizeLimitHandler(FileUploadHandler):
    """First of the upload handlers: refuses an oversize body before a byte is kept.

    The declared length is checked before parsing; the file's bytes are
    counted as they pass (a lying or missing Content-Length), so no more than
    the limit is ever written to the temporary file.
    """

    def __init__(self, limit: int, request=None) -> None:
        super().__init__(request)
        self.limit = limit

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > self.limit + _ENVELOPE_BYTES:
            raise UploadTooLarge
        return None

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            raise UploadTooLarge
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


class LimitedMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        # Small files in memory, the rest in a temporary file as it arrives.
        request.upload_handlers = [
            SizeLimitHandler(settings.QW_ATTACHMENT_MAX_BYTES, request),
            MemoryFileUploadHandler(request),
            TemporaryFileUploadHandler(request),
        ]
        return super().parse(stream, media_type, parser_context)


def _link_payload(attachment) -> dict:
    return attachment_payload(
        attachment_id=attachment.id,
        name=attachment.name,
        size=attachment.size,
        content_type=attachment.content_type,
    )


class AttachmentUpload(APIView):
    parser_classes = [LimitedMultiPartParser]

    @extend_schema(
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={
            201: AttachmentSerializer,
            413: OpenApiResponse(
                ErrorSerializer, description="the file is over QW_ATTACHMENT_MAX_BYTES"
            ),
        },
    )
    def post(self, request):
        """Upload a file; send it with `attachment_ids` on a message (within a day)."""
        upload = AttachmentUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        attachment = attachment_create(
            uploader_id=request.user.id, upload=upload.validated_data["file"]
        )
        return Response(_link_payload(attachment), status=status.HTTP_201_CREATED)


class AttachmentDetail(APIView):
    @extend_schema(responses=AttachmentSerializer)
    def get(self, request, attachment_id: int):
        """A fresh signed link, for the uploader and the participants of its message."""
        attachment = attachment_for_participant(
            user_id=request.user.id, attachment_id=attachment_id
        )
        if attachment is None:
            raise NotFound
        return Response(_link_payload(attachment))


class AttachmentDownload(APIView):
    """The file behind a signed link: the link is the credential (a plain browser download)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[
            OpenApiParameter("token", str, required=True, description="from the signed `url`")
        ],
        responses={
            (200, "*/*"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="the file, as an attachment (Content-Disposition), nosniff",
            ),
            403: OpenApiResponse(ErrorSerializer, description="a forged, altered or expired link"),
        },
        auth=[],
    )
    def get(self, request, attachment_id: int):
        token = request.query_params.get("token", "")
        try:
            attachment = attachment_from_link(attachment_id=attachment_id, token=token)
        except LinkRefused as refused:
            raise PermissionDenied(str(refused)) from None
        response = FileResponse(
            attachment.file.open("rb"),
            as_attachment=True,
            filename=attachment.name,
            content_type=served_content_type(attachment.content_type),
        )
        response["X-Content-Type-Options"] = "nosniff"
        # Even opened directly, nothing in the file runs or loads anything.
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        response["Cache-Control"] = "private, no-store"
        return response
