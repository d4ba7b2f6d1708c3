"""Mentions in rooms (SPEC §11): `@username` of a member → `mentions` and a notification."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model

from chat.models import MessageMention, Room
from notifications.models import Notification
from notifications.services import notifications_create_bulk

MENTION_TYPE = "mention"
# Django's username characters; an @ inside a word (an email address) is no mention.
_MENTION = re.compile(r"(?<![\w.@+-])@([\w.@+-]{1,150})")
_EXCERPT_CHARS = 200


def mentioned_usernames(content: str) -> set[str]:
    """Every `@name` in the text; a trailing dot or dash is punctuation, not the name."""
    if "@" not in content:
        return set()
    return {name.rstrip(".-") for name in _MENTION.findall(content)} - {""}


@dataclass(frozen=True)
class MentionRequest:
    sender_id: int
    room_id: int
    content: str


def mentions_resolve(
    requests: Sequence[MentionRequest], room_members: Mapping[int, Sequence[int]]
) -> list[list[int]]:
    """For each request, the ids of the room members it names (not the sender), sorted.

    One query for the whole batch, and none when no text has an `@`.
    """
    names = [mentioned_usernames(request.content) for request in requests]
    wanted = set().union(*names) if names else set()
    if not wanted:
        return [[] for _ in requests]
    members = {member for request in requests for member in room_members.get(request.room_id, ())}
    by_name = dict(
        get_user_model()
        .objects.filter(id__in=members, username__in=wanted)
        .values_list("username", "id")
    )
    resolved = []
    for request, request_names in zip(requests, names, strict=True):
        in_room = set(room_members.get(request.room_id, ()))
        resolved.append(
            sorted(
                {by_name[name] for name in request_names if name in by_name}
                & in_room - {request.sender_id}
            )
        )
    return resolved


def mention_link(*, room_id: int, message_id: int) -> str:
    return f"/chat/?room={room_id}#message-{message_id}"


def mentions_record(
    messages: Iterable[tuple[int, MentionRequest, Sequence[int]]],
) -> None:
    """Store the mention rows and notify each mentioned member (inside the send's transaction).

    `messages`: (message_id, request, mentioned user ids). The notification is
    the notifications app's: stored, live, and reaching people away (SPEC §10).
    """
    messages = [entry for entry in messages if entry[2]]
    if not messages:
        return
    MessageMention.objects.bulk_create(
        [
            MessageMention(message_id=message_id, user_id=user_id, room_id=request.room_id)
            for message_id, request, user_ids in messages
            for user_id in user_ids
        ]
    )
    _notify(messages)


def _notify(messages: Sequence[tuple[int, MentionRequest, Sequence[int]]]) -> None:
    users = {request.sender_id for _, request, _ in messages}
    rooms = {request.room_id for _, request, _ in messages}
    usernames = dict(get_user_model().objects.filter(id__in=users).values_list("id", "username"))
    room_names = dict(Room.objects.filter(id__in=rooms).values_list("id", "name"))
    for message_id, request, user_ids in messages:
        notifications_create_bulk(
            user_ids=user_ids,
            notification_type=MENTION_TYPE,
            title=f"{usernames.get(request.sender_id, 'Someone')} mentioned you in "
            f"{room_names.get(request.room_id, 'a room')}",
            message=_excerpt(request.content),
            link=mention_link(room_id=request.room_id, message_id=message_id),
        )


def _excerpt(content: str) -> str:
    return content if len(content) <= _EXCERPT_CHARS else content[: _EXCERPT_CHARS - 1] + "…"


def mentions_replace(
    *, message_id: int, sender_id: int, room_id: int, content: str, member_ids: Sequence[int]
) -> list[int]:
    """After an edit: the mention rows follow the new text; newly named members are notified."""
    request = MentionRequest(sender_id=sender_id, room_id=room_id, content=content)
    mentioned = mentions_resolve([request], {room_id: member_ids})[0]
    before = set(
        MessageMention.objects.filter(message_id=message_id).values_list("user_id", flat=True)
    )
    gone = before - set(mentioned)
    if gone:
        MessageMention.objects.filter(message_id=message_id, user_id__in=gone).delete()
    new = [user_id for user_id in mentioned if user_id not in before]
    mentions_record([(message_id, request, new)])
    return mentioned


def mention_notifications_delete(*, messages: Sequence[tuple[int, int]]) -> None:
    """A deleted message's mention notifications go too: (message_id, room_id) pairs.

    Their pending offline deliveries (SPEC §10) reference them and go with them.
    """
    mentioned = MessageMention.objects.filter(message_id__in=[m for m, _ in messages])
    user_ids = set(mentioned.values_list("user_id", flat=True))
    if not user_ids:
        return
    Notification.objects.filter(
        user_id__in=user_ids,
        notification_type=MENTION_TYPE,
        link__in=[mention_link(room_id=room_id, message_id=mid) for mid, room_id in messages],
    ).delete()
    mentioned.delete()
