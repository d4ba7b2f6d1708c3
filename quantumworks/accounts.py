"""Account changes that must reach open sockets: deactivation, deletion and logout.

A socket authenticated once stays open until it closes, so a deactivated or
logged-out user's sockets are closed explicitly, on every server process, by a
control message to their `user.{id}` group after the change commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from quantumworks.realtime import send_control_on_commit, user_group

USER_INACTIVE = {"type": "session.close", "code": 4003, "reason": "user_inactive"}
LOGGED_OUT = {"type": "session.close", "code": 4001, "reason": "invalid_token"}


def sessions_close(*, user_ids: Iterable[int], message: dict) -> None:
    """Close every open socket of these users once the current transaction commits."""
    for user_id in user_ids:
        send_control_on_commit(user_group(user_id), message)


def users_deactivate(*, user_ids: Iterable[int]) -> int:
    """Deactivate users and close their sockets with 4003 (admin action, scripts)."""
    user_ids = list(user_ids)
    with transaction.atomic():
        changed = list(
            get_user_model()
            .objects.filter(id__in=user_ids, is_active=True)
            .values_list("id", flat=True)
        )
        get_user_model().objects.filter(id__in=changed).update(is_active=False)
        sessions_close(user_ids=changed, message=USER_INACTIVE)
    return len(changed)


@receiver(pre_save, sender=get_user_model(), dispatch_uid="qw_user_was_active")
def _remember_previous_active(sender, instance, **kwargs) -> None:
    if instance.pk is None or instance.is_active:
        instance._qw_was_active = None
        return
    instance._qw_was_active = (
        sender.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first()
    )


@receiver(post_save, sender=get_user_model(), dispatch_uid="qw_user_deactivated")
def _close_sockets_of_deactivated_user(sender, instance, created, **kwargs) -> None:
    """The admin's "active" checkbox (or any save) turning a user inactive."""
    if not created and getattr(instance, "_qw_was_active", None):
        with transaction.atomic():
            sessions_close(user_ids=[instance.pk], message=USER_INACTIVE)


@receiver(post_delete, sender=get_user_model(), dispatch_uid="qw_user_deleted")
def _close_sockets_of_deleted_user(sender, instance, **kwargs) -> None:
    """A deleted user's sockets close like a deactivated one's (SPEC §5 4003), after commit."""
    with transaction.atomic():
        sessions_close(user_ids=[instance.pk], message=USER_INACTIVE)
