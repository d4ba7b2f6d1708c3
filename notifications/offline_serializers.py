"""Request and response bodies of the SPEC §10 endpoints: settings and push subscriptions."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rest_framework import serializers

from notifications import webpush
from notifications.models import Level
from realtime.rest.openapi import StrictCharField


class StrictBooleanField(serializers.BooleanField):
    """JSON true/false only: "yes", 1 or "on" are unknown values here, not booleans."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class QuietHoursSerializer(serializers.Serializer):
    start = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"], help_text="HH:MM")
    end = serializers.TimeField(format="%H:%M", input_formats=["%H:%M"], help_text="HH:MM")
    tz = StrictCharField(max_length=64, help_text="an IANA time zone, e.g. Europe/Berlin")

    def validate_tz(self, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise serializers.ValidationError("Unknown time zone.") from None
        return value

    def validate(self, attrs):
        # A PATCH makes nested fields optional too; quiet hours are all or nothing.
        missing = [name for name in self.fields if name not in attrs]
        if missing:
            raise serializers.ValidationError(
                {name: ["This field is required."] for name in missing}
            )
        if attrs["start"] == attrs["end"]:
            raise serializers.ValidationError({"end": ["Must differ from start."]})
        return attrs


class NotificationSettingsSerializer(serializers.Serializer):
    email = serializers.ChoiceField(choices=Level.choices)
    push = serializers.ChoiceField(choices=Level.choices)
    hide_content = StrictBooleanField()
    quiet_hours = QuietHoursSerializer(allow_null=True)


class PushKeysSerializer(serializers.Serializer):
    p256dh = StrictCharField(max_length=200, help_text="base64url uncompressed P-256 point")
    auth = StrictCharField(max_length=100, help_text="base64url 16-byte secret")


class PushSubscriptionSerializer(serializers.Serializer):
    """The browser's `PushSubscription.toJSON()`."""

    endpoint = StrictCharField(max_length=webpush.MAX_ENDPOINT_CHARS)
    keys = PushKeysSerializer()
    expirationTime = serializers.IntegerField(required=False, allow_null=True, help_text="ignored")

    def validate(self, attrs):
        try:
            webpush.check_endpoint(attrs["endpoint"])
        except webpush.SubscriptionInvalid as error:
            raise serializers.ValidationError({"endpoint": [str(error)]}) from None
        try:
            webpush.check_keys(attrs["keys"]["p256dh"], attrs["keys"]["auth"])
        except webpush.SubscriptionInvalid as error:
            raise serializers.ValidationError({"keys": {error.field: [str(error)]}}) from None
        return attrs


class PushEndpointSerializer(serializers.Serializer):
    endpoint = StrictCharField(max_length=webpush.MAX_ENDPOINT_CHARS)


class VapidPublicKeySerializer(serializers.Serializer):
    public_key = serializers.CharField(help_text="base64url, uncompressed P-256")
