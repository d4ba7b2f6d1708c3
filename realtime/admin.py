from django.contrib import admin

from realtime.models import Event, UserInbox


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "seq", "type", "created_at"]
    list_filter = ["type", "created_at"]
    search_fields = ["user__username", "=user__id"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    readonly_fields = ["user", "seq", "type", "payload", "created_at"]
    ordering = ["-id"]

    def has_add_permission(self, request):
        return False  # events are written only through realtime.outbox


@admin.register(UserInbox)
class UserInboxAdmin(admin.ModelAdmin):
    list_display = ["user", "last_seq"]
    search_fields = ["user__username"]
    readonly_fields = ["user", "last_seq"]
