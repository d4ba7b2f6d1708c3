from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo pages (SPEC §8) and `manage.py seed_demo`, over every app."""

    name = "demo"

    def ready(self) -> None:
        from realtime import registry

        registry.register_urls("", "demo.urls")
