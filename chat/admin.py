from django.contrib import admin

from chat.models import ChatMessage, Room, RoomMembership
from chat.services import messages_hide, room_add_member, room_remove_member


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
    actions = ["hide_messages", "delete_messages"]
    # Hiding goes through the action, which tells both sides and corrects
    # the conversation state; read_at moves only with read receipts.
    readonly_fields = ["is_hidden", "read_at"]

    @admin.action(description="Hide selected messages (both sides are told)")
    def hide_messages(self, request, queryset):
        hidden = messages_hide(message_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{hidden} message(s) hidden.")

    @admin.action(description="Delete selected messages (text and files erased, everyone told)")
    def delete_messages(self, request, queryset):
        # The same service as a sender's DELETE /api/chat/messages/{id}/.
        deleted = messages_hide(message_ids=list(queryset.values_list("id", flat=True)), erase=True)
        self.message_user(request, f"{deleted} message(s) deleted.")

    def get_actions(self, request):
        """No bulk row deletion: it would tell no client and leave their replays behind."""
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="content")
    def short_content(self, obj: ChatMessage) -> str:
        return obj.content if len(obj.content) <= 80 else obj.content[:77] + "…"


class RoomMembershipInline(admin.TabularInline):
    model = RoomMembership
    raw_id_fields = ["user"]
    readonly_fields = ["last_read_message_id"]
    extra = 0


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_by", "created_at"]
    search_fields = ["name"]
    inlines = [RoomMembershipInline]
    raw_id_fields = ["created_by"]

    def save_formset(self, request, form, formset, change):
        """Members join and leave through the services: sockets and conversation state follow."""
        if formset.model is not RoomMembership:
            return super().save_formset(request, form, formset, change)
        room = form.instance
        memberships = formset.save(commit=False)
        for membership in formset.deleted_objects:
            room_remove_member(room=room, user_id=membership.user_id)
        for membership in memberships:
            if membership.pk is not None:  # another user typed into an existing row
                previous = RoomMembership.objects.get(pk=membership.pk).user_id
                room_remove_member(room=room, user_id=previous)
            room_add_member(room=room, user_id=membership.user_id)
        return None
