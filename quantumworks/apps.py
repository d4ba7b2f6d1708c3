from django.apps import AppConfig

from quantumworks import registry


class QuantumworksConfig(AppConfig):
    name = "quantumworks"
    verbose_name = "Realtime inbox"

    def ready(self) -> None:
        # accounts: its signal receivers connect on import
        from quantumworks import accounts, session_handlers, subscriptions  # noqa: F401

        registry.register_frame_handlers(session_handlers.HANDLERS)
        registry.register_frame_handlers(subscriptions.HANDLERS)
