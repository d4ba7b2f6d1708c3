from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from notifications import events, signals  # noqa: F401  (signal receivers)
        from realtime import registry

        registry.register_durable_event_types(events.NOTIFICATION, events.NOTIFICATION_READ)
        registry.register_urls("api/", "notifications.urls")
        registry.register_urls("", "notifications.page_urls")
        registry.register_process_service(_start_worker_in_process)


def _start_worker_in_process() -> None:
    from notifications.worker import start_in_process

    start_in_process()
