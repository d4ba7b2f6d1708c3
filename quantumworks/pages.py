"""The demo pages (SPEC §8): plain templates; their scripts talk to the REST API and the socket."""

from django.urls import path
from django.views.generic import TemplateView


def page(template: str, name: str):
    return TemplateView.as_view(template_name=f"demo/{template}", extra_context={"page": name})


urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    path("login/", page("login.html", "login"), name="login"),
    path("chat/", page("chat.html", "chat"), name="chat"),
    path("tasks/", page("tasks.html", "tasks"), name="tasks"),
    path("notifications/", page("notifications.html", "notifications"), name="notifications"),
]
