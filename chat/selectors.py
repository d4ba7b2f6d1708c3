"""Chat reads."""

from __future__ import annotations

from chat.models import RoomMembership


def user_is_room_member(*, user_id: int, room_id: int) -> bool:
    return RoomMembership.objects.filter(room_id=room_id, user_id=user_id).exists()


def room_member_ids(*, room_id: int) -> list[int]:
    return list(RoomMembership.objects.filter(room_id=room_id).values_list("user_id", flat=True))
