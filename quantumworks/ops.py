"""Operations endpoints: the OpenAPI schema, liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import threading

from django.http import HttpResponse, JsonResponse
from drf_spectacular.views import SpectacularAPIView
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.response import Response

from realtime.faults import database_reachable, redis_reachable


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


def readyz(request):
    checks = {"database": database_reachable(), "redis": redis_reachable()}
    failed = [name for name, ok in checks.items() if not ok]
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": checks,
        "failed": failed,
    }
    return JsonResponse(body, status=200 if not failed else 503)


def metrics_view(request):
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
