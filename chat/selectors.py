"""Chat reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.db.models import Prefetch, Q, QuerySet
from django.db.models.functions import Greatest, Least

from chat.models import (
    Attachment,
    ChatMessage,
    ConversationState,
    MessageMention,
    Room,
    RoomMembership,
)
from notifications.preferences import muted_conversations

_STATE = ConversationState._meta.db_table
_MEMBERSHIPS = RoomMembership._meta.db_table
_MENTIONS = MessageMention._meta.db_table
_MESSAGES = ChatMessage._meta.db_table


def user_is_room_member(*, user_id: int, room_id: int) -> bool:
    return RoomMembership.objects.filter(room_id=room_id, user_id=user_id).exists()


def room_member_ids(*, room_id: int) -> list[int]:
    return list(RoomMembership.objects.filter(room_id=room_id).values_list("user_id", flat=True))


def contact_ids(*, user_id: int) -> set[int]:
    """Whom a user's presence concerns: 1:1 counterparts (either direction) and room co-members.

    One query over the user's conversation state and their rooms' member
    lists: its cost follows the number of conversations, not of messages.
    Presence reads it once per online/offline transition, never per heartbeat.
    """
    contacts = set(contact_rows(user_id=user_id))
    contacts.discard(user_id)
    return contacts


def contact_rows(*, user_id: int) -> QuerySet:
    """`contact_ids` as one column of rows, the user among them if in a room (a socket's connect
    folds it into its one statement: presence.hooks)."""
    counterparts = ConversationState.objects.filter(
        user_id=user_id, counterpart__isnull=False
    ).values_list("counterpart_id", flat=True)
    my_rooms = RoomMembership.objects.filter(user_id=user_id).values("room_id")
    roommates = RoomMembership.objects.filter(room_id__in=my_rooms).values_list(
        "user_id", flat=True
    )
    return counterparts.union(roommates)


def user_exists(*, user_id: int) -> bool:
    return get_user_model().objects.filter(id=user_id).exists()


def room_for_member(*, room_id: int, user_id: int) -> Room | None:
    """The room if the user belongs to it; None for unknown and foreign rooms alike."""
    return Room.objects.filter(id=room_id, memberships__user_id=user_id).first()


def rooms_of_user(*, user_id: int) -> QuerySet[Room]:
    """The user's rooms, newest first, members prefetched (two queries in all)."""
    return (
        Room.objects.filter(memberships__user_id=user_id)
        .prefetch_related(
            Prefetch(
                "memberships",
                queryset=RoomMembership.objects.select_related("user").order_by("user_id"),
            )
        )
        .order_by("-id")
    )


def room_with_members(*, room_id: int) -> Room:
    return Room.objects.prefetch_related(
        Prefetch("memberships", queryset=RoomMembership.objects.order_by("user_id"))
    ).get(id=room_id)


def direct_messages(*, user_id: int, other_id: int) -> QuerySet[ChatMessage]:
    """The visible 1:1 history of two users (either direction), newest first.

    Filtered on (LEAST, GREATEST) of the pair so that chat_dm_pair_idx serves
    it in id order: a page reads a page, however long the history.
    """
    low, high = sorted((user_id, other_id))
    return (
        ChatMessage.objects.alias(low=Least("sender_id", "receiver_id"))
        .alias(high=Greatest("sender_id", "receiver_id"))
        .filter(low=low, high=high, receiver__isnull=False, is_hidden=False)
        .order_by("-id")
    )


def room_messages(*, room_id: int) -> QuerySet[ChatMessage]:
    return ChatMessage.objects.filter(room_id=room_id, is_hidden=False).order_by("-id")


_EXTRAS = (
    Prefetch("attachments", queryset=Attachment.objects.order_by("id")),
    Prefetch("mentions", queryset=MessageMention.objects.only("id", "message_id", "user_id")),
)


def with_extras(messages: QuerySet[ChatMessage]) -> QuerySet[ChatMessage]:
    """Messages as payloads show them: attachments and mentions, two queries per page."""
    return messages.prefetch_related(*_EXTRAS)


def message_with_extras(*, message_id: int) -> ChatMessage:
    return with_extras(ChatMessage.objects.filter(id=message_id)).get()


def unread_counts(*, user_id: int) -> tuple[int, int]:
    """(unread messages, those that mention me), in one statement.

    The total is the sum of the conversation state's counters (a row per
    conversation); the mentions are the user's mention rows after each room's
    last read message, an index range per room (chat_mention_unread_idx):
    neither reads the history.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COALESCE(SUM(unread_count), 0) FROM {_STATE} WHERE user_id = %s), "
            f"(SELECT COUNT(*) FROM {_MEMBERSHIPS} rm JOIN {_MENTIONS} mm "
            "ON mm.user_id = rm.user_id AND mm.room_id = rm.room_id "
            "AND mm.message_id > rm.last_read_message_id "
            f"JOIN {_MESSAGES} m ON m.id = mm.message_id AND NOT m.is_hidden "
            "WHERE rm.user_id = %s)",
            [user_id, user_id],
        )
        total, mentions = cursor.fetchone()
    return int(total), int(mentions)


@dataclass(frozen=True)
class Conversation:
    """A 1:1 counterpart (`user`) or a room, with its last visible message."""

    user: AbstractBaseUser | None
    room: Room | None
    last_message: ChatMessage | None
    unread_count: int
    muted: bool = False  # no push or email from it (SPEC §10); still counted as unread

    @property
    def kind(self) -> str:
        return "room" if self.room is not None else "direct"

    def activity_key(self) -> tuple[datetime, int]:
        if self.last_message is not None:
            return self.last_message.created_at, self.last_message.id
        assert self.room is not None  # a 1:1 conversation is listed only with a message
        return self.room.created_at, 0


def conversations_of_user(*, user_id: int) -> list[Conversation]:
    """Every conversation of the user, most recent activity first, in two queries
    (the conversations, the user's mutes).

    Read from the user's conversation state (one row per counterpart or room,
    kept by every write): the cost follows the number of conversations, not
    of messages. A 1:1 conversation whose messages are all hidden is not
    listed; a room always is.
    """
    states = (
        ConversationState.objects.filter(user_id=user_id)
        .filter(Q(room__isnull=False) | Q(last_message__isnull=False))
        .select_related("counterpart", "room", "last_message")
        .prefetch_related(
            *(Prefetch(f"last_message__{p.prefetch_through}", p.queryset) for p in _EXTRAS)
        )
    )
    muted_users, muted_rooms = muted_conversations(user_id=user_id)
    conversations = []
    for state in states:
        message = state.last_message
        if state.room is None and message is None:  # deleted since it was recorded
            continue
        muted = (
            state.room_id in muted_rooms
            if state.room_id is not None
            else state.counterpart_id in muted_users
        )
        conversations.append(
            Conversation(state.counterpart, state.room, message, state.unread_count, muted)
        )
    conversations.sort(key=Conversation.activity_key, reverse=True)
    return conversations
