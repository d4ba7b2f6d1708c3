"""Recompute every user's conversation state from the messages and memberships."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.db import transaction

from chat.state import state_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild chat conversation state (last message, unread count, last activity per user "
        "and conversation) from the stored messages. Safe while the servers run: writers "
        "wait for it and apply their changes on top."
    )

    def handle(self, *args, **options) -> None:
        started = time.monotonic()
        with transaction.atomic():
            rows = state_rebuild()
        self.stdout.write(
            f"rebuilt {rows} conversation state rows in {time.monotonic() - started:.1f}s"
        )
