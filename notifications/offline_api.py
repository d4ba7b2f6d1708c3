"""SPEC §10 over REST: notification settings, the VAPID key, push subscriptions, unsubscribe."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import mail, preferences, webpush
from notifications.offline_serializers import (
    NotificationSettingsSerializer,
    PushEndpointSerializer,
    PushSubscriptionSerializer,
    VapidPublicKeySerializer,
)
from notifications.push_subscriptions import push_subscription_delete, push_subscription_save
from realtime.rest.openapi import error_responses
from realtime.selectors import active_users

# A PushSubscription.toJSON() is a few hundred bytes.
MAX_SUBSCRIPTION_BODY = 4096


def _settings_body(prefs: preferences.Preferences) -> dict:
    quiet = prefs.quiet_hours
    return NotificationSettingsSerializer(
        {
            "email": prefs.email,
            "push": prefs.push,
            "hide_content": prefs.hide_content,
            "quiet_hours": (
                {"start": quiet.start, "end": quiet.end, "tz": quiet.tz} if quiet else None
            ),
        }
    ).data


class NotificationSettingsView(APIView):
    """How the user is reached while away (SPEC §10): defaults until changed."""

    @extend_schema(responses=NotificationSettingsSerializer)
    def get(self, request: Request) -> Response:
        return Response(_settings_body(preferences.preferences_get(user_id=request.user.id)))

    @extend_schema(
        request=NotificationSettingsSerializer(partial=True),
        responses=NotificationSettingsSerializer,
    )
    def patch(self, request: Request) -> Response:
        serializer = NotificationSettingsSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        if "quiet_hours" in changes:
            quiet = changes["quiet_hours"]
            changes["quiet_hours"] = (
                preferences.QuietHours(quiet["start"], quiet["end"], quiet["tz"]) if quiet else None
            )
        prefs = preferences.preferences_update(user_id=request.user.id, **changes)
        return Response(_settings_body(prefs))


class VapidPublicKey(APIView):
    """The application server key a browser subscribes with (public: no sign-in)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: VapidPublicKeySerializer, **error_responses(404)},
        description="404 when Web Push is not configured on this server.",
    )
    def get(self, request: Request) -> Response:
        key = webpush.public_key()
        if key is None:
            raise NotFound("Web Push is not configured on this server.")
        return Response({"public_key": key})


def _check_body_size(request: Request) -> None:
    if len(request.body) > MAX_SUBSCRIPTION_BODY:
        raise ParseError(f"The body is over {MAX_SUBSCRIPTION_BODY} bytes.")


class PushSubscriptions(APIView):
    @extend_schema(
        request=PushSubscriptionSerializer,
        responses={201: PushEndpointSerializer},
        description=(
            "Store this browser's subscription (idempotent per endpoint). The endpoint must be "
            "https:// and not resolve to a loopback or private address (unless the server runs "
            "with QW_PUSH_ALLOW_LOCAL=1)."
        ),
    )
    def post(self, request: Request) -> Response:
        _check_body_size(request)
        serializer = PushSubscriptionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        push_subscription_save(
            user_id=request.user.id,
            endpoint=data["endpoint"],
            p256dh=data["keys"]["p256dh"],
            auth=data["keys"]["auth"],
            user_agent=request.headers.get("User-Agent", ""),
        )
        return Response({"endpoint": data["endpoint"]}, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=PushEndpointSerializer,
        responses={204: None, **error_responses(404)},
    )
    def delete(self, request: Request) -> Response:
        _check_body_size(request)
        serializer = PushEndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not push_subscription_delete(
            user_id=request.user.id, endpoint=serializer.validated_data["endpoint"]
        ):
            raise NotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)


@csrf_exempt  # RFC 8058: the mail client's one-click POST carries no CSRF token
def email_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """The signed link of every missed-message email: GET asks, POST turns email off."""
    user_id = mail.user_of_unsubscribe_token(token)
    user = active_users().filter(id=user_id).first() if user_id is not None else None
    if user is None:
        raise Http404
    if request.method == "POST":
        preferences.email_turn_off(user_id=user.id)
        return render(request, "notifications/unsubscribe.html", {"done": True, "username": user})
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    return render(request, "notifications/unsubscribe.html", {"done": False, "username": user})
