from django.contrib import admin

from notifications.models import Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "notification_type", "title", "created_at", "read_at"]
    list_filter = ["notification_type", "created_at"]
    search_fields = ["title", "message", "user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    ordering = ["-id"]
