from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from quantumworks import api, registry, users

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/auth/token/", TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/logout/", api.logout, name="logout"),
    path("api/me/", api.me, name="me"),
    path("api/users/", users.user_search, name="user-search"),
    path("api/events/", api.EventList.as_view(), name="events"),
    path("api/schema/", api.SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", api.healthz),
    path("readyz", api.readyz),
    path("metrics", api.metrics_view),
    *registry.url_patterns,
]
