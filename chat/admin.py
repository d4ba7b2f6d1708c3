from django.contrib import admin

from chat.models import ChatMessage, Room, RoomMembership
from chat.services import messages_hide


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "sender",
        "receiver",
        "room",
        "short_content",
        "created_at",
        "read_at",
        "is_hidden",
    ]
    list_filter = ["is_hidden", "created_at"]
    search_fields = ["content", "sender__username", "receiver__username", "room__name"]
    list_select_related = ["sender", "receiver", "room"]
    raw_id_fields = ["sender", "receiver", "room"]
    date_hierarchy = "created_at"
    ordering = ["-id"]
    actions = ["hide_messages"]

    @admin.action(description="Hide selected messages (both sides are told)")
    def hide_messages(self, request, queryset):
        hidden = messages_hide(message_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{hidden} message(s) hidden.")

    @admin.display(description="content")
    def short_content(self, obj: ChatMessage) -> str:
        return obj.content if len(obj.content) <= 80 else obj.content[:77] + "…"


class RoomMembershipInline(admin.TabularInline):
    model = RoomMembership
    raw_id_fields = ["user"]
    extra = 0


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_by", "created_at"]
    search_fields = ["name"]
    inlines = [RoomMembershipInline]
    raw_id_fields = ["created_by"]
