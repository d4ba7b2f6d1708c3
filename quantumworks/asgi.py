"""ASGI entry point: HTTP goes to Django, WebSocket to the realtime consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "quantumworks.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from quantumworks.routing import websocket_urlpatterns
from realtime.auth.socket import JWTAuthMiddleware, OriginGuard
from realtime.rest.body_limit import RequestBodyLimit

application = ProtocolTypeRouter(
    {
        # Static files (admin, API docs) from the app directories: the server
        # works without a separate web server in front of it.
        "http": RequestBodyLimit(
            ASGIStaticFilesHandler(django_asgi_app), limit=settings.QW_MAX_REQUEST_BYTES
        ),
        "websocket": OriginGuard(JWTAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
