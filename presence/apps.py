from django.apps import AppConfig


class PresenceConfig(AppConfig):
    name = "presence"

    def ready(self) -> None:
        from presence import hooks
        from realtime import registry

        registry.register_connect_read(hooks.CONTACTS_READ, hooks.connect_contacts)
        registry.register_connection_hooks(
            opened=hooks.connection_opened,
            alive=hooks.connections_alive,
            closed=hooks.connection_closed,
        )
        registry.register_urls("api/presence/", "presence.urls")
