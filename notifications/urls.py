from django.urls import path

from notifications import api, offline_api

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
    path(
        "notification-settings/",
        offline_api.NotificationSettingsView.as_view(),
        name="notification-settings",
    ),
    path(
        "push/vapid-public-key/",
        offline_api.VapidPublicKey.as_view(),
        name="push-vapid-public-key",
    ),
    path(
        "push/subscriptions/",
        offline_api.PushSubscriptions.as_view(),
        name="push-subscriptions",
    ),
]
