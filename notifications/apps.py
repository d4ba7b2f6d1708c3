from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from notifications import events, signals  # noqa: F401  (signal receivers)
        from realtime import registry

        registry.register_durable_event_types(events.NOTIFICATION, events.NOTIFICATION_READ)
        registry.register_urls("api/", "notifications.urls")
