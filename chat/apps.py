from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self) -> None:
        from chat import events, handlers, selectors
        from realtime import registry

        registry.register_durable_event_types(*events.DURABLE_EVENT_TYPES)
        registry.register_frame_handlers(handlers.HANDLERS)
        registry.register_subscription_kind(
            "room",
            group=events.room_group,
            can_subscribe=lambda user_id, is_staff, room_id: selectors.user_is_room_member(
                user_id=user_id, room_id=room_id
            ),
        )
        registry.register_urls("api/chat/", "chat.urls")
