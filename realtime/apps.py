from django.apps import AppConfig

from realtime import registry


class RealtimeConfig(AppConfig):
    name = "realtime"
    # The label the engine had as `quantumworks`: its table names
    # (quantumworks_event, quantumworks_userinbox) and migration history keep it.
    label = "quantumworks"
    verbose_name = "Realtime inbox"

    def ready(self) -> None:
        from realtime.session import handlers, subscriptions

        registry.register_frame_handlers(handlers.HANDLERS)
        registry.register_frame_handlers(subscriptions.HANDLERS)
