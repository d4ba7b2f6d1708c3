"""Request and response shapes of the chat REST API (SPEC §7)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.api import UserBriefSerializer
from chat.attachments import MAX_ATTACHMENTS_PER_MESSAGE, attachment_url
from chat.selectors import user_exists
from chat.services import CONTROL_CHARS, clean_content
from realtime.domain_errors import ContentInvalid, ContentNotText, ContentTooLarge
from realtime.rest.openapi import QuerySerializer, StrictCharField
from realtime.selectors import active_user_ids


def _does_not_exist(user_id: int) -> str:
    return f'Invalid pk "{user_id}" - object does not exist.'


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": 10_000,
        # Something besides whitespace and the control characters it drops.
        "pattern": rf"[^\s{CONTROL_CHARS}]",
        "description": (
            "1–10,000 characters and at most 10 KiB of UTF-8 after control characters "
            "(but \\n and \\t) are removed and the text is trimmed (SPEC §6)"
        ),
    }
)
class ContentField(serializers.Field):
    """Message text under the socket's rules (SPEC §6), cleaned by the same function.

    Not a CharField: its null-character validator would refuse text that the
    socket accepts after stripping control characters.
    """

    default_error_messages = {
        "invalid": "Not a valid string.",
        "blank": "This field may not be blank.",
        "not_text": "Not valid Unicode text.",
        "too_large": "Ensure this field has no more than 10,000 characters and 10 KiB.",
    }

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return clean_content(data)
        except ContentTooLarge:
            self.fail("too_large")
        except ContentNotText:
            self.fail("not_text")
        except ContentInvalid:
            self.fail("blank")

    def to_representation(self, value: str) -> str:
        return value


class AttachmentSerializer(serializers.Serializer):
    """An uploaded file as every message payload lists it; `url` is a fresh signed link."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    size = serializers.IntegerField()
    content_type = serializers.CharField()
    url = serializers.SerializerMethodField()

    def get_url(self, attachment) -> str:
        return attachment_url(attachment.id)


class MessageSerializer(serializers.Serializer):
    """One stored message; field names follow the `chat_message` frame.

    Read with `attachments` and `mentions` prefetched (selectors.with_extras).
    """

    message_id = serializers.IntegerField(source="id")
    sender_id = serializers.IntegerField()
    receiver_id = serializers.IntegerField(allow_null=True)
    room_id = serializers.IntegerField(allow_null=True)
    content = serializers.CharField()
    client_msg_id = serializers.CharField(allow_null=True)
    timestamp = serializers.DateTimeField(source="created_at")
    delivered_at = serializers.DateTimeField(allow_null=True)
    read_at = serializers.DateTimeField(allow_null=True)
    edited_at = serializers.DateTimeField(allow_null=True)
    attachments = AttachmentSerializer(many=True, source="attachments.all")
    mentions = serializers.SerializerMethodField()

    def get_mentions(self, message) -> list[int]:
        return sorted(mention.user_id for mention in message.mentions.all())


class MessageSendSerializer(serializers.Serializer):
    exactly_one_of = ("receiver_id", "room_id")  # also stated in the schema (realtime.rest.openapi)

    receiver_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    room_id = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    content = ContentField()
    client_msg_id = StrictCharField(
        required=False, allow_null=True, min_length=1, max_length=64, trim_whitespace=False
    )
    attachment_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        default=list,
        max_length=MAX_ATTACHMENTS_PER_MESSAGE,
        help_text="ids of the sender's own uploads not yet sent (POST /api/chat/attachments/)",
    )

    def validate_attachment_ids(self, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("An attachment can be sent only once.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if sum(attrs.get(name) is not None for name in self.exactly_one_of) != 1:
            raise serializers.ValidationError("Give exactly one of 'receiver_id' or 'room_id'.")
        return attrs


class MessageEditSerializer(serializers.Serializer):
    content = ContentField()


class AttachmentUploadSerializer(serializers.Serializer):
    """multipart/form-data with the file in the field `file` (the schema of the upload)."""

    file = serializers.FileField()


class UnreadSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="unread messages across all conversations")
    mentions = serializers.IntegerField(help_text="those of them that mention me")


class MessageSentSerializer(serializers.Serializer):
    """The REST twin of the socket's `message_sent` ack."""

    message_id = serializers.IntegerField()
    client_msg_id = serializers.CharField(allow_null=True)
    timestamp = serializers.DateTimeField()
    duplicate = serializers.BooleanField()


class MessageReadSerializer(serializers.Serializer):
    message_id = serializers.IntegerField()
    status = serializers.CharField()


class HistoryQuerySerializer(QuerySerializer):
    """`?with={user_id}` or `?room={id}`: exactly one."""

    room = serializers.IntegerField(required=False, min_value=1)

    def get_fields(self) -> dict[str, serializers.Field]:
        # `with` is a Python keyword, so it cannot be declared as an attribute.
        fields = super().get_fields()
        fields["with"] = serializers.IntegerField(
            required=False, min_value=1, help_text="the other user's id (1:1 history)"
        )
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("with" in attrs) == ("room" in attrs):
            raise serializers.ValidationError("Give exactly one of 'with' or 'room'.")
        return attrs


class RoomBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ConversationSerializer(serializers.Serializer):
    """A 1:1 conversation (`user` set) or a room (`room` set)."""

    type = serializers.ChoiceField(choices=["direct", "room"], source="kind")
    user = UserBriefSerializer(allow_null=True)
    room = RoomBriefSerializer(allow_null=True)
    last_message = MessageSerializer(allow_null=True)
    unread_count = serializers.IntegerField()
    muted = serializers.BooleanField(help_text="muted: no push or email from it (SPEC §10)")


class RoomSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    created_by = serializers.IntegerField(source="created_by_id", allow_null=True)
    created_at = serializers.DateTimeField()
    member_ids = serializers.SerializerMethodField()
    members = serializers.SerializerMethodField()

    def get_member_ids(self, room) -> list[int]:
        return [membership.user_id for membership in room.memberships.all()]

    @extend_schema_field(UserBriefSerializer(many=True))
    def get_members(self, room) -> list[dict]:
        """Who is in the room, with names: clients label room senders with them."""
        return [
            {"id": membership.user_id, "username": membership.user.username}
            for membership in room.memberships.all()
        ]


class RoomCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    member_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, max_length=500
    )

    def validate_member_ids(self, value: list[int]) -> list[int]:
        found = active_user_ids(user_ids=value)
        missing = sorted(set(value) - found)
        if missing:
            raise serializers.ValidationError([_does_not_exist(user_id) for user_id in missing])
        return sorted(found)


class RoomMemberSerializer(serializers.Serializer):
    """`{"user_id"}`. Adding needs an active user; removing only an existing one."""

    user_id = serializers.IntegerField(min_value=1)

    def validate_user_id(self, value: int) -> int:
        if self.context.get("adding"):
            known = value in active_user_ids(user_ids=[value])
        else:
            known = user_exists(user_id=value)
        if not known:
            raise serializers.ValidationError(_does_not_exist(value))
        return value
