"""The per-user durable inbox shared by every app (SPEC §3 Event, §4)."""

from django.conf import settings
from django.db import models


class UserInbox(models.Model):
    """The last seq handed out for a user.

    Created lazily by an upsert the first time the user gets an event, so users
    made with bulk_create (no post_save) need nothing special. The row is the
    per-user lock that keeps seqs gap-free and in commit order.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="inbox",
    )
    last_seq = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"inbox of user {self.user_id} at seq {self.last_seq}"


class Event(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    seq = models.BigIntegerField()
    type = models.CharField(max_length=40)
    # The frame's fields other than `type` and `seq`.
    payload = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "seq"], name="event_user_seq_unique")
        ]
        ordering = ["user", "seq"]

    def __str__(self) -> str:
        return f"{self.type} #{self.seq} for user {self.user_id}"
