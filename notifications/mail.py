"""The missed-message email (SPEC §10): one per batch, by conversation, RFC 8058 unsubscribe."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

UNSUBSCRIBE_SALT = "qw.notifications.email-unsubscribe"


@dataclass(frozen=True)
class Item:
    author: str
    text: str
    when: datetime


@dataclass
class Group:
    """One conversation of the batch (a 1:1 counterpart, a room, or notifications)."""

    label: str
    link: str
    items: list[Item] = field(default_factory=list)


def unsubscribe_token(user_id: int) -> str:
    """Signed with SECRET_KEY: the link's holder may turn this user's email off, nothing else."""
    return signing.dumps(user_id, salt=UNSUBSCRIBE_SALT, compress=True)


def user_of_unsubscribe_token(token: str) -> int | None:
    try:
        user_id = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    return user_id if isinstance(user_id, int) else None


def unsubscribe_url(user_id: int) -> str:
    path = reverse("email-unsubscribe", args=[unsubscribe_token(user_id)])
    return f"{settings.QW_PUBLIC_URL}{path}"


def missed_message_email(*, user: User, groups: Sequence[Group]) -> EmailMultiAlternatives:
    """Plain text and HTML (the templates escape every message's text in the HTML part)."""
    count = sum(len(group.items) for group in groups)
    if len(groups) == 1:
        subject = f"{count} new in {groups[0].label}"
    else:
        subject = f"{count} new in {len(groups)} conversations"
    context = {
        "user": user,
        "groups": groups,
        "unsubscribe_url": unsubscribe_url(user.id),
        "settings_url": f"{settings.QW_PUBLIC_URL}/notifications/",
    }
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("notifications/email/missed.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
        headers={
            # RFC 8058: a mail client may POST to the URL to unsubscribe in one click.
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Auto-Submitted": "auto-generated",
        },
    )
    message.attach_alternative(
        render_to_string("notifications/email/missed.html", context), "text/html"
    )
    return message
