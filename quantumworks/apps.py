from django.apps import AppConfig


class QuantumworksConfig(AppConfig):
    name = "quantumworks"
    verbose_name = "Realtime inbox"
