from django.apps import AppConfig


class QuantumworksConfig(AppConfig):
    name = "quantumworks"
    verbose_name = "Realtime inbox"

    def ready(self) -> None:
        from quantumworks import accounts  # noqa: F401  (signal receivers)
