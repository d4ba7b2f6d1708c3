from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/token/", api.TokenObtainView.as_view(), name="token_obtain_pair"),
    path("auth/token/refresh/", api.TokenRefreshView.as_view(), name="token_refresh"),
    path("auth/logout/", api.logout, name="logout"),
    path("me/", api.me, name="me"),
    path("users/", api.user_search, name="user-search"),
]
