from django.urls import path

from notifications import api

urlpatterns = [
    path("notifications/", api.NotificationList.as_view(), name="notifications"),
    path(
        "notifications/<int:notification_id>/read/",
        api.NotificationRead.as_view(),
        name="notification_read",
    ),
    path(
        "notifications/read-all/",
        api.NotificationReadAll.as_view(),
        name="notifications_read_all",
    ),
]
