from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self) -> None:
        from chat import attachments, edits, events, handlers, selectors
        from realtime import registry

        registry.register_durable_event_types(*events.DURABLE_EVENT_TYPES)
        registry.register_event_rewriter(edits.replayed_events)
        registry.register_pruner(
            lambda: f"deleted {attachments.attachments_prune()} unattached uploads"
        )
        registry.register_frame_handlers(handlers.HANDLERS)
        registry.register_subscription_kind(
            "room",
            group=events.room_group,
            can_subscribe=lambda user_id, is_staff, room_id: selectors.user_is_room_member(
                user_id=user_id, room_id=room_id
            ),
        )
        registry.register_urls("api/chat/", "chat.urls")
