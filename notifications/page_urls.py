from django.urls import path

from notifications import offline_api

urlpatterns = [
    path(
        "email/unsubscribe/<str:token>/",
        offline_api.email_unsubscribe,
        name="email-unsubscribe",
    ),
]
