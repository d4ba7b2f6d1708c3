"""`GET /api/presence/` (SPEC §7)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from chat.selectors import contact_ids
from presence.hooks import online_user_ids


class ContactPresenceSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    online = serializers.BooleanField()


class PresenceSerializer(serializers.Serializer):
    online = serializers.ListField(
        child=serializers.IntegerField(), help_text="ids of my contacts online now"
    )
    contacts = ContactPresenceSerializer(
        many=True, help_text="my 1:1 counterparts and room co-members, by user id"
    )


@extend_schema(
    summary="Which of my contacts are online now",
    description=(
        "Contacts are the users I have 1:1 messages with (either direction) and the members "
        "of my rooms. Live changes arrive on the socket as `presence` frames."
    ),
    responses=PresenceSerializer,
)
@api_view(["GET"])
def presence_view(request):
    contacts = sorted(contact_ids(user_id=request.user.id))
    online = online_user_ids(user_ids=contacts)
    return Response(
        {
            "online": [user_id for user_id in contacts if user_id in online],
            "contacts": [{"user_id": user_id, "online": user_id in online} for user_id in contacts],
        }
    )
