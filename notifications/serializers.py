from __future__ import annotations

from rest_framework import serializers

from notifications.models import Notification
from realtime.rest.openapi import QuerySerializer


class NotificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notification
        fields = ["id", "notification_type", "title", "message", "link", "created_at", "read_at"]
        read_only_fields = fields


class NotificationListQuerySerializer(QuerySerializer):
    unread = serializers.BooleanField(
        required=False, default=False, help_text="only notifications not read yet"
    )


class ReadAllResultSerializer(serializers.Serializer):
    marked_read = serializers.IntegerField(help_text="how many notifications this call marked read")
    unread_count = serializers.IntegerField()
