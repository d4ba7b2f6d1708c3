from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

from quantumworks import ops
from realtime import api as realtime_api
from realtime import registry

handler404 = "realtime.rest.errors.not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/events/", realtime_api.EventList.as_view(), name="events"),
    path("api/schema/", ops.SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", ops.healthz),
    path("readyz", ops.readyz),
    path("metrics", ops.metrics_view),
    # The apps' URLs (accounts, chat, notifications, tasks, demo), from their AppConfig.ready().
    *registry.url_patterns,
]
