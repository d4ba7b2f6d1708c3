"""Chat over REST (SPEC §7): conversations, history, sending, receipts, rooms."""

from __future__ import annotations

import math

from django.conf import settings
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from redis.exceptions import RedisError
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors
from chat.edits import EditWindowClosed, message_delete, message_edit
from chat.serializers import (
    ConversationSerializer,
    HistoryQuerySerializer,
    MessageEditSerializer,
    MessageReadSerializer,
    MessageSendSerializer,
    MessageSentSerializer,
    MessageSerializer,
    RoomCreateSerializer,
    RoomMemberSerializer,
    RoomSerializer,
    UnreadSerializer,
)
from chat.services import (
    message_mark_read,
    message_send,
    room_add_member,
    room_create,
    room_remove_member,
)
from realtime import faults, ratelimit
from realtime.domain_errors import NotFound as DomainNotFound
from realtime.rest.openapi import ErrorSerializer, error_responses
from realtime.rest.pagination import NewestFirstPagination


def _only(name: str, description: str) -> dict:
    return {
        "type": "object",
        "properties": {name: {"type": "integer", "minimum": 1, "description": description}},
        "required": [name],
        "additionalProperties": False,
    }


# `?with=` or `?room=`, exactly one: an exploded object is how OpenAPI says so.
CONVERSATION = OpenApiParameter(
    "conversation",
    type={"oneOf": [_only("with", "the other user's id (1:1)"), _only("room", "a room's id")]},
    location=OpenApiParameter.QUERY,
    required=True,
    style="form",
    explode=True,
    description="`with={user_id}` for a 1:1 conversation or `room={id}`: exactly one",
)

ATTACHMENTS_REFUSED = "Every attachment must be your own upload that is not sent yet."


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the message's state."
    default_code = "conflict"


RateLimitedSerializer = inline_serializer(
    "RateLimited",
    {"detail": serializers.CharField(), "retry_after": serializers.FloatField()},
)


class ConversationList(APIView):
    @extend_schema(responses=ConversationSerializer(many=True))
    def get(self, request):
        conversations = selectors.conversations_of_user(user_id=request.user.id)
        return Response(ConversationSerializer(conversations, many=True).data)


class MessageListCreate(GenericAPIView):
    pagination_class = NewestFirstPagination
    serializer_class = MessageSerializer

    @extend_schema(
        parameters=[CONVERSATION],
        responses=MessageSerializer(many=True),
    )
    def get(self, request):
        """History of a 1:1 conversation or a room, newest first."""
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        user_id = request.user.id
        if "with" in query.validated_data:
            other_id = query.validated_data["with"]
            if not selectors.user_exists(user_id=other_id):
                raise NotFound
            messages = selectors.direct_messages(user_id=user_id, other_id=other_id)
        else:
            room_id = query.validated_data["room"]
            if selectors.room_for_member(room_id=room_id, user_id=user_id) is None:
                raise NotFound
            messages = selectors.room_messages(room_id=room_id)
        page = self.paginate_queryset(selectors.with_extras(messages))
        return self.get_paginated_response(MessageSerializer(page, many=True).data)

    @extend_schema(
        request=MessageSendSerializer,
        responses={
            201: MessageSentSerializer,
            200: OpenApiResponse(MessageSentSerializer, description="a resend: duplicate"),
            **error_responses(404),
            429: RateLimitedSerializer,
        },
    )
    def post(self, request):
        """Send a message: the socket's rules, live delivery and idempotency."""
        send = MessageSendSerializer(data=request.data)
        send.is_valid(raise_exception=True)
        try:
            retry_after = ratelimit.hit_sync(
                f"chat:{request.user.id}",
                limit=settings.QW_RATE_CHAT_PER_MIN,
                window_seconds=60,
            )
        except RedisError as error:
            # As on the socket (chat/writer.py): without Redis the limit fails open.
            if not faults.report("chat rate limit", error):
                raise
            retry_after = None
        if retry_after is not None:
            return Response(
                {"detail": "Too many messages.", "retry_after": retry_after},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(math.ceil(retry_after))},
            )
        data = send.validated_data
        result = message_send(
            sender_id=request.user.id,
            content=data["content"],
            receiver_id=data.get("receiver_id"),
            room_id=data.get("room_id"),
            client_msg_id=data.get("client_msg_id"),
            attachment_ids=data["attachment_ids"],
        )
        if result.error == "not_found":
            raise NotFound
        if result.error == "invalid_message":
            raise serializers.ValidationError({"attachment_ids": [ATTACHMENTS_REFUSED]})
        if not result.ok:
            raise APIException
        sent = MessageSentSerializer(
            {
                "message_id": result.message_id,
                "client_msg_id": data.get("client_msg_id"),
                "timestamp": result.created_at,
                "duplicate": result.duplicate,
            }
        )
        return Response(
            sent.data, status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED
        )


class MessageDetail(APIView):
    """Edit or delete one's own message (SPEC §11); anyone else's is a 404."""

    @extend_schema(
        request=MessageEditSerializer,
        responses={
            200: MessageSerializer,
            409: OpenApiResponse(ErrorSerializer, description="past QW_EDIT_WINDOW_SECONDS"),
        },
    )
    def patch(self, request, message_id: int):
        """Replace the text (the sender, within the edit window); every device sees it."""
        edit = MessageEditSerializer(data=request.data)
        edit.is_valid(raise_exception=True)
        try:
            message_edit(
                user_id=request.user.id,
                message_id=message_id,
                content=edit.validated_data["content"],
            )
        except DomainNotFound:
            raise NotFound from None
        except EditWindowClosed as closed:
            raise Conflict(closed.message) from None
        return Response(
            MessageSerializer(selectors.message_with_extras(message_id=message_id)).data
        )

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, message_id: int):
        """Delete (the sender at any time, or staff): it leaves every history and replay."""
        try:
            message_delete(
                user_id=request.user.id, is_staff=request.user.is_staff, message_id=message_id
            )
        except DomainNotFound:
            raise NotFound from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class Unread(APIView):
    @extend_schema(responses=UnreadSerializer)
    def get(self, request):
        """Unread messages across all conversations, and those that mention me."""
        total, mentions = selectors.unread_counts(user_id=request.user.id)
        return Response(UnreadSerializer({"total": total, "mentions": mentions}).data)


class MessageRead(APIView):
    @extend_schema(request=None, responses=MessageReadSerializer)
    def post(self, request, message_id: int):
        """Read receipt: this message and every earlier one of its conversation."""
        if not message_mark_read(user_id=request.user.id, message_id=message_id):
            raise NotFound
        return Response(MessageReadSerializer({"message_id": message_id, "status": "read"}).data)


class RoomListCreate(APIView):
    @extend_schema(responses=RoomSerializer(many=True))
    def get(self, request):
        rooms = selectors.rooms_of_user(user_id=request.user.id)
        return Response(RoomSerializer(rooms, many=True).data)

    @extend_schema(request=RoomCreateSerializer, responses={201: RoomSerializer})
    def post(self, request):
        create = RoomCreateSerializer(data=request.data)
        create.is_valid(raise_exception=True)
        room = room_create(
            creator_id=request.user.id,
            name=create.validated_data["name"],
            member_ids=create.validated_data["member_ids"],
        )
        room = selectors.room_with_members(room_id=room.id)
        return Response(RoomSerializer(room).data, status=status.HTTP_201_CREATED)


class RoomMembers(APIView):
    """Only the creator manages members; to anyone outside the room it does not exist."""

    def _managed_room(self, request, room_id: int):
        room = selectors.room_for_member(room_id=room_id, user_id=request.user.id)
        if room is None:
            raise NotFound
        if room.created_by_id != request.user.id:
            raise PermissionDenied("Only the room's creator can manage its members.")
        return room

    @extend_schema(
        request=RoomMemberSerializer,
        responses={201: RoomSerializer, 200: RoomSerializer, **error_responses(403)},
    )
    def post(self, request, room_id: int):
        """Add a member (200 if already one)."""
        room = self._managed_room(request, room_id)
        member = RoomMemberSerializer(data=request.data, context={"adding": True})
        member.is_valid(raise_exception=True)
        added = room_add_member(room=room, user_id=member.validated_data["user_id"])
        body = RoomSerializer(selectors.room_with_members(room_id=room.id)).data
        return Response(body, status=status.HTTP_201_CREATED if added else status.HTTP_200_OK)

    @extend_schema(
        request=RoomMemberSerializer,
        responses={200: RoomSerializer, **error_responses(403)},
    )
    def delete(self, request, room_id: int):
        """Remove a member; they receive nothing sent to the room afterwards."""
        room = self._managed_room(request, room_id)
        member = RoomMemberSerializer(data=request.data)
        member.is_valid(raise_exception=True)
        user_id = member.validated_data["user_id"]
        if user_id == room.created_by_id:
            raise serializers.ValidationError(
                {"user_id": ["The creator cannot be removed from the room."]}
            )
        if not room_remove_member(room=room, user_id=user_id):
            raise NotFound
        return Response(RoomSerializer(selectors.room_with_members(room_id=room.id)).data)
