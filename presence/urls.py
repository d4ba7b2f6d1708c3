from django.urls import path

from presence import api

urlpatterns = [
    path("", api.presence_view, name="presence"),
]
