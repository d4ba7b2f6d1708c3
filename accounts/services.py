"""Account changes that end sessions: logout, deactivation, deletion, a password change.

A JWT is valid by its signature until it expires and a socket authenticated
once stays open, so ending a session takes three steps, all after the change
commits and on every server process: access tokens issued until now are
refused (realtime.auth.revocation), refresh tokens are blacklisted (all of
them for deactivation and a password change; logout blacklists its own),
and open sockets are closed by a control message to their `user.{id}` group.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from realtime.auth.revocation import access_tokens_revoke
from realtime.outbox import send_control_on_commit, user_group
from realtime.selectors import active_user_ids

USER_INACTIVE = {"type": "session.close", "code": 4003, "reason": "user_inactive"}
LOGGED_OUT = {"type": "session.close", "code": 4001, "reason": "invalid_token"}


def refresh_tokens_blacklist(*, user_ids: Iterable[int]) -> None:
    """Blacklist every unexpired refresh token issued to these users."""
    outstanding = OutstandingToken.objects.filter(
        user_id__in=list(user_ids), expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
    )
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )


def sessions_end(*, user_ids: Iterable[int], message: dict, all_refresh_tokens: bool) -> None:
    """End these users' sessions once the current transaction commits (see the module doc)."""
    user_ids = list(user_ids)
    if all_refresh_tokens:
        refresh_tokens_blacklist(user_ids=user_ids)
    for user_id in user_ids:
        # Tokens first: a socket reconnecting after the close must be refused.
        transaction.on_commit(lambda user_id=user_id: access_tokens_revoke(user_id=user_id))
        send_control_on_commit(user_group(user_id), message)


def users_deactivate(*, user_ids: Iterable[int]) -> int:
    """Deactivate users and close their sockets with 4003 (admin action, scripts)."""
    user_ids = list(user_ids)
    with transaction.atomic():
        changed = sorted(active_user_ids(user_ids=user_ids))
        get_user_model().objects.filter(id__in=changed).update(is_active=False)
        sessions_end(user_ids=changed, message=USER_INACTIVE, all_refresh_tokens=True)
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
def _end_sessions_on_deactivation_or_new_password(sender, instance, created, **kwargs) -> None:
    """The admin's "active" checkbox, or a new password (admin, password change, a script).

    `set_password` leaves the raw password on the instance until its save
    finishes; a hash upgrade at login clears it first, so it ends nothing.
    """
    if created:
        return
    if getattr(instance, "_qw_was_active", None):
        with transaction.atomic():
            sessions_end(user_ids=[instance.pk], message=USER_INACTIVE, all_refresh_tokens=True)
    elif getattr(instance, "_password", None) is not None:
        with transaction.atomic():
            sessions_end(user_ids=[instance.pk], message=LOGGED_OUT, all_refresh_tokens=True)


@receiver(post_delete, sender=get_user_model(), dispatch_uid="qw_user_deleted")
def _end_sessions_of_deleted_user(sender, instance, **kwargs) -> None:
    """A deleted user's sockets close like a deactivated one's (SPEC §5 4003), after commit.

    Their refresh tokens went with the user row (cascade); nothing to blacklist.
    """
    with transaction.atomic():
        sessions_end(user_ids=[instance.pk], message=USER_INACTIVE, all_refresh_tokens=False)
