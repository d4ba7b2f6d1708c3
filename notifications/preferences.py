"""A user's notification settings and mutes, read and written (SPEC §10)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications.models import ConversationMute, Level, NotificationSettings


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    tz: str

    def end_if_inside(self, now: datetime) -> datetime | None:
        """The moment these quiet hours end if `now` is inside them, else None."""
        zone = ZoneInfo(self.tz)
        local = now.astimezone(zone)
        moment = local.time().replace(tzinfo=None)
        if self.start < self.end:
            inside = self.start <= moment < self.end
        else:  # across midnight, e.g. 22:00 → 07:00
            inside = moment >= self.start or moment < self.end
        if not inside:
            return None
        end = datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return end


@dataclass(frozen=True)
class Preferences:
    email: str = Level.DIRECT_AND_MENTIONS
    push: str = Level.DIRECT_AND_MENTIONS
    hide_content: bool = False
    quiet_hours: QuietHours | None = None

    def allows(self, channel: str, *, direct_or_mention: bool) -> bool:
        level = self.email if channel == "email" else self.push
        return level == Level.ALL or (level == Level.DIRECT_AND_MENTIONS and direct_or_mention)


DEFAULTS = Preferences()


def _from_row(row: NotificationSettings) -> Preferences:
    quiet = (
        QuietHours(row.quiet_start, row.quiet_end, row.quiet_tz)
        if row.quiet_start is not None and row.quiet_end is not None and row.quiet_tz
        else None
    )
    return Preferences(row.email, row.push, row.hide_content, quiet)


def preferences_of(*, user_ids: Iterable[int]) -> dict[int, Preferences]:
    """Every listed user's preferences (the defaults without a row), in one query."""
    ids = set(user_ids)
    found = {
        row.user_id: _from_row(row) for row in NotificationSettings.objects.filter(user_id__in=ids)
    }
    return {user_id: found.get(user_id, DEFAULTS) for user_id in ids}


def preferences_get(*, user_id: int) -> Preferences:
    return preferences_of(user_ids=[user_id])[user_id]


_UNSET = object()


def preferences_update(
    *,
    user_id: int,
    email: str | None = None,
    push: str | None = None,
    hide_content: bool | None = None,
    quiet_hours: QuietHours | object | None = _UNSET,
) -> Preferences:
    """Change the given settings (already validated); the rest stay as they are."""
    with transaction.atomic():
        row, _ = NotificationSettings.objects.select_for_update().get_or_create(user_id=user_id)
        if email is not None:
            row.email = email
        if push is not None:
            row.push = push
        if hide_content is not None:
            row.hide_content = hide_content
        if quiet_hours is not _UNSET:
            quiet = quiet_hours if isinstance(quiet_hours, QuietHours) else None
            row.quiet_start = quiet.start if quiet else None
            row.quiet_end = quiet.end if quiet else None
            row.quiet_tz = quiet.tz if quiet else ""
        row.save()
    return _from_row(row)


def email_turn_off(*, user_id: int) -> None:
    """The unsubscribe link's effect: no more email, whatever the level was."""
    preferences_update(user_id=user_id, email=Level.OFF)


# --- mutes ------------------------------------------------------------------
def _active(now: datetime) -> Q:
    return Q(until__isnull=True) | Q(until__gt=now)


def mute_set(
    *,
    user_id: int,
    counterpart_id: int | None = None,
    room_id: int | None = None,
    until: datetime | None = None,
) -> ConversationMute:
    """Mute a conversation (again: the new `until` replaces the old one)."""
    target = {"counterpart_id": counterpart_id} if counterpart_id else {"room_id": room_id}
    mute, _ = ConversationMute.objects.update_or_create(
        user_id=user_id, **target, defaults={"until": until}
    )
    return mute


def mute_clear(
    *, user_id: int, counterpart_id: int | None = None, room_id: int | None = None
) -> None:
    target = {"counterpart_id": counterpart_id} if counterpart_id else {"room_id": room_id}
    ConversationMute.objects.filter(user_id=user_id, **target).delete()


def muted_conversations(*, user_id: int) -> tuple[set[int], set[int]]:
    """(counterpart ids, room ids) the user has muted now: one query for a conversation list."""
    counterparts: set[int] = set()
    rooms: set[int] = set()
    for counterpart_id, room_id in ConversationMute.objects.filter(
        _active(timezone.now()), user_id=user_id
    ).values_list("counterpart_id", "room_id"):
        if counterpart_id:
            counterparts.add(counterpart_id)
        else:
            rooms.add(room_id)
    return counterparts, rooms


def muted_among(
    *, pairs: Iterable[tuple[int, int | None, int | None]], now: datetime
) -> set[tuple[int, int | None, int | None]]:
    """Which (user, counterpart, room) conversations are muted now, in one query."""
    pairs = set(pairs)
    if not pairs:
        return set()
    condition = Q()
    for user_id, counterpart_id, room_id in pairs:
        condition |= Q(user_id=user_id, counterpart_id=counterpart_id, room_id=room_id)
    return set(
        ConversationMute.objects.filter(condition)
        .filter(_active(now))
        .values_list("user_id", "counterpart_id", "room_id")
    )
