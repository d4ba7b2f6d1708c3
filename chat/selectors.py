"""Chat reads."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import (
    Case,
    Count,
    F,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Coalesce

from chat.models import ChatMessage, Room, RoomMembership


def user_is_room_member(*, user_id: int, room_id: int) -> bool:
    return RoomMembership.objects.filter(room_id=room_id, user_id=user_id).exists()


def room_member_ids(*, room_id: int) -> list[int]:
    return list(RoomMembership.objects.filter(room_id=room_id).values_list("user_id", flat=True))


def contact_ids(*, user_id: int) -> set[int]:
    """Whom a user's presence concerns: 1:1 counterparts (either direction) and room co-members.

    One query (a UNION): presence reads it once per online/offline transition,
    never per heartbeat.
    """
    sent_to = ChatMessage.objects.filter(sender_id=user_id, receiver__isnull=False).values_list(
        "receiver_id", flat=True
    )
    received_from = ChatMessage.objects.filter(receiver_id=user_id).values_list(
        "sender_id", flat=True
    )
    my_rooms = RoomMembership.objects.filter(user_id=user_id).values("room_id")
    roommates = RoomMembership.objects.filter(room_id__in=my_rooms).values_list(
        "user_id", flat=True
    )
    contacts = set(sent_to.union(received_from, roommates))
    contacts.discard(user_id)
    return contacts


def user_exists(*, user_id: int) -> bool:
    return get_user_model().objects.filter(id=user_id).exists()


def active_user_ids(*, user_ids: Iterable[int]) -> set[int]:
    return set(
        get_user_model()
        .objects.filter(id__in=set(user_ids), is_active=True)
        .values_list("id", flat=True)
    )


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
    """The visible 1:1 history of two users (either direction), newest first."""
    return ChatMessage.objects.filter(
        Q(sender_id=user_id, receiver_id=other_id) | Q(sender_id=other_id, receiver_id=user_id),
        is_hidden=False,
    ).order_by("-id")


def room_messages(*, room_id: int) -> QuerySet[ChatMessage]:
    return ChatMessage.objects.filter(room_id=room_id, is_hidden=False).order_by("-id")


@dataclass(frozen=True)
class Conversation:
    """A 1:1 counterpart (`user`) or a room, with its last visible message."""

    user: AbstractBaseUser | None
    room: Room | None
    last_message: ChatMessage | None
    unread_count: int

    @property
    def kind(self) -> str:
        return "room" if self.room is not None else "direct"

    def activity_key(self) -> tuple[datetime, int]:
        if self.last_message is not None:
            return self.last_message.created_at, self.last_message.id
        assert self.room is not None  # a 1:1 conversation exists only through a message
        return self.room.created_at, 0


def conversations_of_user(*, user_id: int) -> list[Conversation]:
    """Every conversation of the user, most recent activity first, in three queries.

    1:1: one GROUP BY over the user's visible direct messages gives each
    counterpart's last message id and the unread count (sent to me, read_at
    NULL). Rooms: one query over my memberships with correlated subqueries for
    the last message id and the unread count (by others, after my
    last_read_message_id). Then one query loads all the last messages. The
    count does not grow with the number of conversations.
    """
    counterpart = Case(When(sender_id=user_id, then=F("receiver_id")), default=F("sender_id"))
    direct = (
        ChatMessage.objects.filter(
            Q(sender_id=user_id) | Q(receiver_id=user_id), room__isnull=True, is_hidden=False
        )
        .annotate(counterpart=counterpart)
        .order_by()
        .values("counterpart")
        .annotate(
            last_id=Max("id"),
            unread=Count("id", filter=Q(receiver_id=user_id, read_at__isnull=True)),
        )
        .values_list("last_id", "unread")
    )
    room_last_id = (
        ChatMessage.objects.filter(room_id=OuterRef("room_id"), is_hidden=False)
        .order_by("-id")
        .values("id")[:1]
    )
    room_unread = (
        ChatMessage.objects.filter(
            room_id=OuterRef("room_id"),
            id__gt=OuterRef("last_read_message_id"),
            is_hidden=False,
        )
        .exclude(sender_id=user_id)
        .order_by()
        .values("room_id")
        .annotate(count=Count("id"))
        .values("count")
    )
    memberships = (
        RoomMembership.objects.filter(user_id=user_id)
        .select_related("room")
        .annotate(
            last_id=Subquery(room_last_id),
            unread=Coalesce(Subquery(room_unread), 0),
        )
    )
    direct_rows = list(direct)
    membership_rows = list(memberships)
    last_ids = [last_id for last_id, _ in direct_rows]
    last_ids += [m.last_id for m in membership_rows if m.last_id is not None]
    last_messages = ChatMessage.objects.select_related("sender", "receiver").in_bulk(last_ids)

    conversations = []
    for last_id, unread in direct_rows:
        message = last_messages.get(last_id)
        if message is None:  # deleted since the first query
            continue
        other = message.receiver if message.sender_id == user_id else message.sender
        conversations.append(Conversation(other, None, message, unread))
    for membership in membership_rows:
        conversations.append(
            Conversation(
                None,
                membership.room,
                last_messages.get(membership.last_id) if membership.last_id else None,
                membership.unread,
            )
        )
    conversations.sort(key=Conversation.activity_key, reverse=True)
    return conversations
