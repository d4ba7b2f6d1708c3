"""Delete inbox events older than retention (QW_EVENT_RETENTION_DAYS, default 30).

A client resuming from before the oldest kept event gets `resync_required`
and refetches over REST. Deletes in chunks so a large backlog never holds one
long transaction. Then the apps' own clean-ups (realtime.registry.pruners),
e.g. chat's uploads never attached to a message.
"""

from django.core.management.base import BaseCommand

from realtime import registry
from realtime.models import Event
from realtime.selectors import retention_cutoff


class Command(BaseCommand):
    help = "Delete durable events older than the retention period."

    def add_arguments(self, parser):
        parser.add_argument("--chunk", type=int, default=5000)

    def handle(self, *args, chunk: int, **options):
        cutoff = retention_cutoff()
        total = 0
        while True:
            ids = list(
                Event.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:chunk]
            )
            if not ids:
                break
            total += Event.objects.filter(id__in=ids).delete()[0]
        self.stdout.write(f"deleted {total} events older than {cutoff.isoformat()}")
        for prune in registry.pruners:
            self.stdout.write(prune())
