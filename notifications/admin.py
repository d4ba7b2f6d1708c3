"""Admin: notifications, and announcements to selected users or to everyone."""

from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts.services import users_deactivate
from notifications.models import (
    Notification,
    NotificationSettings,
    PendingDelivery,
    PushSubscription,
)
from notifications.services import announcement_send

User = get_user_model()


def _validate_link(value: str) -> None:
    # Clients put the link in an href: only site paths and web URLs, never javascript:.
    if value.startswith(("http://", "https://")) or (
        value.startswith("/") and not value.startswith("//")
    ):
        return
    raise ValidationError("Use a path on this site (/…) or an http(s):// URL.")


class AnnouncementForm(forms.Form):
    title = forms.CharField(max_length=200)
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False)
    link = forms.CharField(max_length=500, required=False, validators=[_validate_link])


def _announcement_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    recipients: str,
    user_ids: Sequence[int] | None,
    hidden: Sequence[tuple[str, str]] = (),
) -> TemplateResponse | None:
    """The form (until a valid `apply` POST), then the send; None once sent."""
    form = AnnouncementForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        sent = announcement_send(user_ids=user_ids, **form.cleaned_data)
        model_admin.message_user(request, f"Announcement sent to {sent} users.", messages.SUCCESS)
        return None
    return TemplateResponse(
        request,
        "admin/notifications/announcement.html",
        {
            **model_admin.admin_site.each_context(request),
            "title": "Send an announcement",
            "opts": model_admin.model._meta,
            "form": form,
            "recipients": recipients,
            "hidden": hidden,
        },
    )


def _can_announce(request: HttpRequest) -> bool:
    return request.user.has_perm("notifications.add_notification")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "notification_type", "title", "created_at", "read_at"]
    list_filter = ["notification_type", "created_at"]
    search_fields = ["title", "message", "user__username"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    ordering = ["-id"]

    def get_urls(self):
        announce = path(
            "announce/",
            self.admin_site.admin_view(self.announce_view),
            name="notifications_notification_announce",
        )
        return [announce, *super().get_urls()]

    def announce_view(self, request: HttpRequest) -> HttpResponse:
        """Announce to every active user."""
        if not _can_announce(request):
            raise PermissionDenied
        active = User.objects.filter(is_active=True).count()
        page = _announcement_page(
            self, request, recipients=f"every active user ({active})", user_ids=None
        )
        if page is None:
            return HttpResponseRedirect(reverse("admin:notifications_notification_changelist"))
        return page


admin.site.unregister(User)


@admin.register(User)
class QuantumWorksUserAdmin(UserAdmin):
    """The auth User admin plus our actions; add new ones to `actions`."""

    actions = ["send_announcement", "deactivate_users"]

    @admin.action(description="Deactivate selected users (closes their sockets)")
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet) -> None:
        changed = users_deactivate(user_ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{changed} user(s) deactivated; their sockets were closed.")

    def has_announce_permission(self, request: HttpRequest) -> bool:
        return _can_announce(request)

    @admin.action(description="Send announcement to selected users", permissions=["announce"])
    def send_announcement(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        user_ids = list(queryset.values_list("id", flat=True))
        # Post the selection back as the changelist sent it, so the admin
        # rebuilds the same queryset (including "select all across pages").
        hidden = [("action", "send_announcement")]
        hidden += [
            (ACTION_CHECKBOX_NAME, value) for value in request.POST.getlist(ACTION_CHECKBOX_NAME)
        ]
        if request.POST.get("select_across"):
            hidden.append(("select_across", request.POST["select_across"]))
        return _announcement_page(
            self,
            request,
            recipients=f"{len(user_ids)} selected users",
            user_ids=user_ids,
            hidden=hidden,
        )


# --- offline delivery (SPEC §10): what operators look at when someone says "no email" ---
@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ("user", "email", "push", "hide_content", "quiet_start", "quiet_end", "quiet_tz")
    list_filter = ("email", "push")
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


@admin.register(PushSubscription)
class PushSubscriptionAdmin(admin.ModelAdmin):
    list_display = ("user", "created_at", "last_success_at", "failure_count", "user_agent")
    search_fields = ("user__username",)
    raw_id_fields = ("user",)


@admin.register(PendingDelivery)
class PendingDeliveryAdmin(admin.ModelAdmin):
    list_display = ("user", "channel", "message", "notification", "due_at", "attempts")
    list_filter = ("channel",)
    raw_id_fields = ("user", "message", "notification")
