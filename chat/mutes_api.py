"""`POST/DELETE /api/chat/mutes/` (SPEC §10): mute a 1:1 conversation or a room."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors
from notifications.preferences import mute_clear, mute_set
from realtime.rest.openapi import error_responses
from realtime.selectors import active_user_ids


class MuteTargetSerializer(serializers.Serializer):
    """Exactly one of `with` (a user id) or `room` (a room id). DELETE takes the
    POST's body as it is: other fields (`until`) are ignored, as DRF does."""

    exactly_one_of = ("with", "room")  # also stated in the schema (realtime.rest.openapi)

    # `with` is a Python keyword: declared below under its wire name.
    room = serializers.IntegerField(required=False, min_value=1)

    def get_fields(self):
        fields = super().get_fields()
        fields["with"] = serializers.IntegerField(required=False, min_value=1)
        return fields

    def validate(self, attrs):
        if ("with" in attrs) == ("room" in attrs):
            raise serializers.ValidationError("Give exactly one of 'with' and 'room'.")
        return attrs


class MuteSerializer(MuteTargetSerializer):
    until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="ISO time; absent or null: until unmuted"
    )

    def validate_until(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


def _target(request: Request, serializer_class) -> dict:
    """The validated target; a user that does not exist or a room that is not
    the caller's is a 404 (SPEC §7: no enumeration)."""
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    user_id = request.user.id
    if "with" in data:
        if data["with"] == user_id:
            raise serializers.ValidationError({"with": ["You cannot mute yourself."]})
        if not active_user_ids(user_ids=[data["with"]]):
            raise NotFound()
    elif not selectors.user_is_room_member(user_id=user_id, room_id=data["room"]):
        raise NotFound()
    return data


class Mutes(APIView):
    @extend_schema(
        request=MuteSerializer,
        responses={201: MuteSerializer, **error_responses(404)},
    )
    def post(self, request: Request) -> Response:
        data = _target(request, MuteSerializer)
        until = data.get("until")
        mute_set(
            user_id=request.user.id,
            counterpart_id=data.get("with"),
            room_id=data.get("room"),
            until=until,
        )
        target = {"with": data["with"]} if "with" in data else {"room": data["room"]}
        return Response(
            {**target, "until": serializers.DateTimeField().to_representation(until)},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        request=MuteTargetSerializer,
        responses={204: None, **error_responses(404)},
    )
    def delete(self, request: Request) -> Response:
        data = _target(request, MuteTargetSerializer)
        mute_clear(
            user_id=request.user.id, counterpart_id=data.get("with"), room_id=data.get("room")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
