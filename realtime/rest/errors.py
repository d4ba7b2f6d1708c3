"""How HTTP requests fail: client mistakes in one log line, server faults with an incident id.

A client mistake (bad body, over-size body, unknown id) is a 4xx with a DRF
body and never a traceback in the log. An unexpected exception is a 500
whose JSON body carries an incident id; the one logged traceback carries
the same id, so a user's report leads to the traceback. PostgreSQL or Redis
unreachable is a 503 with `Retry-After`, counted by the fault log
(realtime.faults) instead of a traceback per request.
"""

from __future__ import annotations

import logging

from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, JsonResponse
from django.views.defaults import page_not_found
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from realtime import faults
from realtime.incidents import log_incident, new_incident_id

logger = logging.getLogger("quantumworks.http")

_BODY_REFUSED = (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent)


def api_exception_handler(exc, context):
    """DRF's handler, plus Django's own body limits as 400s with a DRF body."""
    if isinstance(exc, _BODY_REFUSED):
        request = context["request"]
        # Django's handler would log this with a traceback under django.security.
        logger.warning("refused %s %s: %s", request.method, request.path, exc)
        return Response({"detail": str(exc)}, status=400)
    return drf_exception_handler(exc, context)


class IncidentMiddleware:
    """The last word on an exception no view handled: a 500 JSON body with an incident id."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Http404 | PermissionDenied | SuspiciousOperation | BadRequest):
            return None  # Django's own 4xx answers
        if faults.report("http", exception):
            # PostgreSQL or Redis unreachable: the fault log has it, no traceback per request.
            return JsonResponse(
                {"detail": "Service temporarily unavailable."},
                status=503,
                headers={"Retry-After": "1"},
            )
        incident_id = new_incident_id()
        log_incident(logger, incident_id, f"{request.method} {request.path} failed")
        return JsonResponse(
            {"detail": "Internal server error.", "incident_id": incident_id}, status=500
        )


def not_found(request, exception):
    """Django's 404 (no URL matched, e.g. `/api/tasks/abc/`): JSON under /api/, as DRF's own."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
