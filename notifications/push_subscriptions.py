"""A user's Web Push subscriptions: stored per browser endpoint (SPEC §10)."""

from __future__ import annotations

from notifications.models import PushSubscription


def push_subscription_save(
    *, user_id: int, endpoint: str, p256dh: str, auth: str, user_agent: str = ""
) -> PushSubscription:
    """Idempotent per endpoint; an endpoint seen under another user (the browser
    signed in as someone else) now belongs to this one, with the new keys."""
    subscription, _ = PushSubscription.objects.update_or_create(
        endpoint=endpoint,
        defaults={
            "user_id": user_id,
            "p256dh": p256dh,
            "auth": auth,
            "user_agent": user_agent[:200],
            "failure_count": 0,
        },
    )
    return subscription


def push_subscription_delete(*, user_id: int, endpoint: str) -> bool:
    """False when the user has no such subscription (another user's counts as none)."""
    deleted, _ = PushSubscription.objects.filter(user_id=user_id, endpoint=endpoint).delete()
    return bool(deleted)
