from django.apps import AppConfig


class PresenceConfig(AppConfig):
    name = "presence"

    def ready(self) -> None:
        from chat.selectors import contact_rows
        from presence import hooks
        from realtime import registry

        registry.register_connect_read(
            hooks.CONTACTS_READ,
            rows=lambda user_id: contact_rows(user_id=user_id),
            convert=hooks.connect_contacts,
        )
        registry.register_connection_hooks(
            opened=hooks.connection_opened,
            alive=hooks.connections_alive,
            closed=hooks.connection_closed,
        )
        registry.register_urls("api/presence/", "presence.urls")
