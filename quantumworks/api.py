"""Cross-app REST endpoints: the current user, the durable inbox, health."""

from __future__ import annotations

import threading

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularAPIView
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings

from quantumworks.accounts import LOGGED_OUT, sessions_end
from quantumworks.models import Event
from quantumworks.pagination import IntegerCursorPagination
from quantumworks.tokens import RefreshToken


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()


@extend_schema(responses=MeSerializer)
@api_view(["GET"])
def me(request):
    return Response(MeSerializer(request.user).data)


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["seq", "type", "payload", "created_at"]


class SeqPagination(IntegerCursorPagination):
    # Oldest first by the (user, seq) unique key.
    ordering = "seq"
    page_size = 200
    page_size_query_param = "page_size"
    max_page_size = 1000


class EventList(ListAPIView):
    """The durable inbox after `after_seq`, oldest first."""

    serializer_class = EventSerializer
    pagination_class = SeqPagination

    @extend_schema(parameters=[OpenApiParameter("after_seq", int, description="only seq > N")])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        queryset = Event.objects.filter(user=self.request.user)
        after = self.request.query_params.get("after_seq")
        if after is not None:
            try:
                queryset = queryset.filter(seq__gt=int(after))
            except ValueError:
                raise serializers.ValidationError({"after_seq": ["must be an integer"]}) from None
        return queryset


class LogoutSerializer(serializers.Serializer):
    refresh = serializers.CharField()


@extend_schema(request=LogoutSerializer, responses={204: None})
@api_view(["POST"])
def logout(request):
    """Blacklist the refresh token, refuse the user's access tokens, close their sockets (4001)."""
    serializer = LogoutSerializer(data=request.data)
    serializer.is_valid(raise_exception=True)
    try:
        refresh = RefreshToken(serializer.validated_data["refresh"])
    except TokenError:
        raise serializers.ValidationError({"refresh": ["invalid or expired token"]}) from None
    if str(refresh.get(api_settings.USER_ID_CLAIM)) != str(request.user.pk):
        raise serializers.ValidationError({"refresh": ["not your token"]})
    with transaction.atomic():
        refresh.blacklist()
        sessions_end(user_ids=[request.user.pk], message=LOGGED_OUT, all_refresh_tokens=False)
    return Response(status=204)


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema, built once per process and language.

    drf-spectacular builds it on every request with module-level state that
    concurrent builds corrupt: the first requests of a fresh process, all at
    once, got 500s. One build at a time, then the cached schema.
    """

    _built: dict[str | None, Response] = {}
    _lock = threading.Lock()
    # `?lang=` is free text: a bounded cache, or clients could fill memory.
    MAX_CACHED = 8

    def _get_version_parameter(self, request):
        # The API has one version; `?version=` went unchecked into the
        # Content-Disposition header (a "\r" in it was a 500).
        return None

    def _get_schema_response(self, request):
        key = request.GET.get("lang")
        with self._lock:
            cached = self._built.get(key)
            if cached is None:
                cached = super()._get_schema_response(request)
                if len(self._built) < self.MAX_CACHED:
                    self._built[key] = cached
        return Response(cached.data, headers={"Content-Disposition": cached["Content-Disposition"]})


def healthz(request):
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


def _redis_ok() -> bool:
    """The counters' Redis and every channel-layer shard answer PING."""
    if not settings.REDIS_URL:
        return True
    from quantumworks.redis_client import layer_clients, new_sync_client

    options = {"socket_timeout": 2, "socket_connect_timeout": 2}
    clients = []
    try:
        clients = [new_sync_client(**options), *layer_clients(**options)]
        return all(client.ping() for client in clients)
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False
    finally:
        for client in clients:
            client.close()


def readyz(request):
    checks = {"database": _database_ok(), "redis": _redis_ok()}
    failed = [name for name, ok in checks.items() if not ok]
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": checks,
        "failed": failed,
    }
    return JsonResponse(body, status=200 if not failed else 503)


def metrics_view(request):
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
