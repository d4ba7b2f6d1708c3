from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Identity: sessions ended everywhere (logout, deactivation, new password), me, search."""

    name = "accounts"

    def ready(self) -> None:
        from accounts import services  # noqa: F401  (signal receivers)
        from realtime import registry

        registry.register_urls("api/", "accounts.urls")
