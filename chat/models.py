import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Greatest, Least


class Room(models.Model):
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="RoomMembership", related_name="rooms"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class RoomMembership(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    joined_at = models.DateTimeField(auto_now_add=True)
    # Everything up to this message id counts as read by this member.
    last_read_message_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="room_membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.room_id}"


class ChatMessage(models.Model):
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sent_messages"
    )
    receiver = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="received_messages",
    )
    room = models.ForeignKey(
        Room, on_delete=models.CASCADE, null=True, blank=True, related_name="messages"
    )
    content = models.TextField()
    # NULL, not "", when absent: the partial unique index must skip it.
    client_msg_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    is_hidden = models.BooleanField(default=False)
    edited_at = models.DateTimeField(null=True, blank=True)
    # Set when the sender (or staff) deleted it: the content is erased and the
    # message is hidden for good; the row stays so a resend of its
    # client_msg_id is still answered as a duplicate, never stored again.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(receiver__isnull=False) & Q(room__isnull=True))
                | (Q(receiver__isnull=True) & Q(room__isnull=False)),
                name="chat_message_receiver_xor_room",
            ),
            # Idempotent sends: the database, not a read-then-write, decides.
            models.UniqueConstraint(
                fields=["sender", "client_msg_id"],
                condition=Q(client_msg_id__isnull=False),
                name="chat_message_client_msg_id_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["sender", "receiver", "id"], name="chat_dm_sender_idx"),
            models.Index(fields=["receiver", "sender", "id"], name="chat_dm_receiver_idx"),
            models.Index(fields=["room", "id"], name="chat_room_idx"),
            # A 1:1 history page in both directions is one backward range scan
            # (newest first, LIMIT page) instead of sorting the pair's history.
            models.Index(
                Least("sender", "receiver"),
                Greatest("sender", "receiver"),
                F("id"),
                condition=Q(receiver__isnull=False),
                name="chat_dm_pair_idx",
            ),
            # Read receipts and the unread rebuild touch only unread 1:1 rows.
            models.Index(
                fields=["receiver", "sender", "id"],
                condition=Q(read_at__isnull=True, receiver__isnull=False),
                name="chat_dm_unread_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} from {self.sender_id}"


def attachment_path(attachment: "Attachment", filename: str) -> str:
    """A random storage name: the uploader's file name is shown, never used as a path."""
    return f"attachments/{uuid.uuid4().hex}"


class Attachment(models.Model):
    """An uploaded file; unattached (message NULL) until a message of its uploader carries it."""

    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    message = models.ForeignKey(
        ChatMessage, on_delete=models.CASCADE, null=True, related_name="attachments"
    )
    file = models.FileField(upload_to=attachment_path, max_length=200)
    name = models.CharField(max_length=255)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=127)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The daily prune reads only the unattached ones.
            models.Index(
                fields=["created_at"],
                condition=Q(message__isnull=True),
                name="chat_attachment_unattached_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"attachment {self.pk} ({self.name})"


class MessageMention(models.Model):
    """`@username` of a room member in a room message (SPEC §11)."""

    message = models.ForeignKey(ChatMessage, on_delete=models.CASCADE, related_name="mentions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="chat_mention_unique")
        ]
        indexes = [
            # Unread mentions: per room of the user, those after the last read
            # message, a range scan that costs what is unread.
            models.Index(fields=["user", "room", "message"], name="chat_mention_unread_idx"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} in message {self.message_id}"


class ConversationState(models.Model):
    """One user's view of one conversation (a 1:1 counterpart or a room).

    Maintained in the transaction of every write that changes it (sends, read
    receipts, hides, membership changes), so reads on the connect and page-load
    paths cost a row per conversation instead of a scan of the history.
    `manage.py rebuild_conversations` recomputes it from the messages.

    Unread, as the conversation list has always counted it: 1:1, the visible
    messages from the counterpart with read_at NULL; room, the visible messages
    by others after the membership's last_read_message_id.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )  # the unique (user, peer) index serves lookups by user
    # The counterpart's user id (1:1) or minus the room id: one unique key, so a
    # batch of sends of both kinds is one upsert with one conflict target.
    peer = models.BigIntegerField()
    counterpart = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, related_name="+"
    )
    room = models.ForeignKey(Room, on_delete=models.CASCADE, null=True, related_name="+")
    # The last visible message (NULL: none); not a constraint, so the writer
    # never waits on a message row and a deleted message only reads as none.
    # Not indexed either: every send moves it, and with no index on the
    # columns a send changes, PostgreSQL updates the row in place (HOT).
    last_message = models.ForeignKey(
        ChatMessage,
        on_delete=models.DO_NOTHING,
        null=True,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    last_activity_at = models.DateTimeField(null=True)  # the last message's created_at
    unread_count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "peer"], name="conversation_state_unique"),
            models.CheckConstraint(
                condition=(Q(peer__gt=0) & Q(counterpart__isnull=False) & Q(room__isnull=True))
                | (Q(peer__lt=0) & Q(counterpart__isnull=True) & Q(room__isnull=False)),
                name="conversation_state_peer_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"conversation of {self.user_id} with {self.peer}"
