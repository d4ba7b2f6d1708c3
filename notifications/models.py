from django.conf import settings
from django.db import models


class Notification(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    notification_type = models.CharField(max_length=50, default="info")
    title = models.CharField(max_length=200)
    message = models.TextField(blank=True, default="")
    link = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-id"], name="notification_user_idx"),
            # The unread list and the badge count read only unread rows.
            models.Index(
                fields=["user", "-id"],
                condition=models.Q(read_at__isnull=True),
                name="notification_unread_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} → {self.user_id}"


# --- reaching people who are not on the page (SPEC §10) ----------------------------
class Level(models.TextChoices):
    ALL = "all"  # 1:1 messages, mentions and every other notification
    DIRECT_AND_MENTIONS = "direct_and_mentions"
    OFF = "off"


class NotificationSettings(models.Model):
    """A user's choices; a user without a row has the defaults (SPEC §10)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="notification_settings",
    )
    email = models.CharField(
        max_length=24, choices=Level.choices, default=Level.DIRECT_AND_MENTIONS
    )
    push = models.CharField(max_length=24, choices=Level.choices, default=Level.DIRECT_AND_MENTIONS)
    hide_content = models.BooleanField(default=False)
    # All three set, or none (no quiet hours); tz is an IANA name checked with zoneinfo.
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    quiet_tz = models.CharField(max_length=64, blank=True, default="")

    def __str__(self) -> str:
        return f"settings of {self.user_id}"


class ConversationMute(models.Model):
    """A muted 1:1 conversation (`counterpart`) or room, until `until` (None: for good)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    counterpart = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # A string reference: chat imports notifications, never the reverse.
    room = models.ForeignKey(
        "chat.Room", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(counterpart__isnull=True) ^ models.Q(room__isnull=True),
                name="mute_one_target",
            ),
            models.UniqueConstraint(
                fields=["user", "counterpart"],
                condition=models.Q(counterpart__isnull=False),
                name="mute_user_counterpart_unique",
            ),
            models.UniqueConstraint(
                fields=["user", "room"],
                condition=models.Q(room__isnull=False),
                name="mute_user_room_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} mutes {self.counterpart_id or f'room {self.room_id}'}"


class PushSubscription(models.Model):
    """A browser's `PushSubscription` (RFC 8030 endpoint, RFC 8291 keys)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = models.CharField(max_length=1024, unique=True)
    p256dh = models.CharField(max_length=100)
    auth = models.CharField(max_length=32)
    user_agent = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"push of {self.user_id}"


class Channel(models.TextChoices):
    PUSH = "push"
    EMAIL = "email"


class PendingDelivery(models.Model):
    """One push or email owed to a user who was away, for a message or a notification.

    Written in the transaction of the message or notification, so it exists
    exactly when they do; the CASCADE foreign keys drop it with a deleted
    message or notification. `notify_worker` sends it (notifications/worker.py).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    message = models.ForeignKey(
        "chat.ChatMessage", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()
    due_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    # A claim: the worker that set lease_token owns the row until lease_until.
    lease_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(message__isnull=True) ^ models.Q(notification__isnull=True),
                name="pending_one_subject",
            ),
            models.UniqueConstraint(
                fields=["user", "channel", "message"],
                condition=models.Q(message__isnull=False),
                name="pending_message_unique",
            ),
            models.UniqueConstraint(
                fields=["user", "channel", "notification"],
                condition=models.Q(notification__isnull=False),
                name="pending_notification_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["due_at"], name="pending_due_idx"),
            models.Index(fields=["user", "channel"], name="pending_user_channel_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.user_id}"
