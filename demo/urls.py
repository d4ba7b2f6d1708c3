"""The demo pages (SPEC §8): plain templates; their scripts talk to the REST API and the socket."""

from django.conf import settings
from django.urls import path
from django.views.generic import TemplateView


def page(template: str, name: str):
    return TemplateView.as_view(template_name=f"demo/{template}", extra_context={"page": name})


class LoginPage(TemplateView):
    template_name = "demo/login.html"

    def get_context_data(self, **kwargs):
        # The seeded demo passwords are only for a DEBUG demo, never a real deployment.
        return {**super().get_context_data(**kwargs), "debug_demo_users": settings.DEBUG}


urlpatterns = [
    path("", TemplateView.as_view(template_name="index.html"), name="index"),
    path("login/", LoginPage.as_view(extra_context={"page": "login"}), name="login"),
    path("chat/", page("chat.html", "chat"), name="chat"),
    path("tasks/", page("tasks.html", "tasks"), name="tasks"),
    # Where a task notification's `link` points: the board, with that card in focus.
    path("tasks/<int:task_id>", page("tasks.html", "tasks"), name="task"),
    path("notifications/", page("notifications.html", "notifications"), name="notifications"),
]
