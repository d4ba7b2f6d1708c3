"""The offline-delivery worker (SPEC §10): `manage.py notify_worker`, or a thread of the demo.

Pending deliveries are rows (notifications.models.PendingDelivery); any number
of workers share them:

- **Claim, then send.** A worker takes due rows with `SELECT … FOR UPDATE
  SKIP LOCKED` and, in that same short transaction, stamps them with a lease
  (its token, an expiry). Another worker skips locked rows and ignores leased
  ones, so no row is taken twice. The send happens after the commit, outside
  any transaction: holding the row lock across an HTTP or SMTP call would keep
  a PostgreSQL connection idle in transaction per send, and in the embedded
  default (SQLite) would hold the one write lock and stall every chat message
  for as long as a push service takes to answer.
- **Bookkeeping only under one's own lease.** Deleting a sent row or
  rescheduling a failed one is conditional on the lease token, so a worker
  that lost its lease cannot undo another's work.
- **SIGKILL loses nothing.** A killed worker's rows keep their lease until it
  expires (QW_NOTIFY_LEASE_SECONDS, longer than any send may take given the
  timeouts) and are then due again for any worker.
- **The window no design closes:** a push service or SMTP server that
  accepted a delivery just before the worker died, before its delete
  committed, gets it again after the lease. Two-phase bookkeeping cannot help
  (the provider is outside our transaction); the push's Topic and the service
  worker's tag make a repeated push replace the first on the device.
- **Wake-ups:** LISTEN on the channel the pending table's insert trigger
  notifies (migration 0003), so a new row is picked up at once; a poll every
  QW_NOTIFY_POLL_SECONDS and a timer for the next due row cover the rest
  (and are all there is on SQLite).
- A hanging endpoint holds one of QW_NOTIFY_CONCURRENCY threads for at most
  its timeout; the others keep sending.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import F, Min, Q
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from notifications import mail, metrics, webpush
from notifications.models import Channel, PendingDelivery, PushSubscription
from notifications.offline import away_among
from notifications.preferences import Preferences, muted_among, preferences_of
from notifications.subjects import HIDDEN_BODY, Item, item_of, pending_rows, push_payload

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "qw_pending_delivery"
BACKOFF_CAP_SECONDS = 3600


# --- outcomes -------------------------------------------------------------------
@dataclass
class Outcome:
    sent: list[PendingDelivery]
    suppressed: list[PendingDelivery]
    retry: list[PendingDelivery]
    later: dict[int, datetime]  # row id → when (quiet hours)

    @classmethod
    def empty(cls) -> Outcome:
        return cls([], [], [], {})


class Worker:
    def __init__(
        self,
        *,
        concurrency: int | None = None,
        lease_seconds: float | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        self.concurrency = concurrency or settings.QW_NOTIFY_CONCURRENCY
        self.lease = timedelta(seconds=lease_seconds or settings.QW_NOTIFY_LEASE_SECONDS)
        slowest = max(settings.QW_PUSH_TIMEOUT_SECONDS, settings.EMAIL_TIMEOUT or 0)
        if self.lease.total_seconds() <= slowest:
            raise ImproperlyConfigured(
                "QW_NOTIFY_LEASE_SECONDS must exceed QW_PUSH_TIMEOUT_SECONDS and "
                "QW_EMAIL_TIMEOUT_SECONDS: a send could outlive its claim and be made twice"
            )
        self.poll_seconds = poll_seconds or settings.QW_NOTIFY_POLL_SECONDS
        self.token = uuid.uuid4().hex
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.in_flight = 0
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="notify")

    # --- the loop ------------------------------------------------------------
    def run(self) -> None:
        listener = None
        if connection.vendor == "postgresql":
            listener = threading.Thread(target=self._listen, name="notify-listen", daemon=True)
            listener.start()
        logger.info("notify worker %s started (%d threads)", self.token[:8], self.concurrency)
        while not self.stopping.is_set():
            self.wake.clear()
            free = self.concurrency - self.in_flight
            jobs = self._claim(limit=free) if free > 0 else []
            for job in jobs:
                self._submit(job)
            if free > 0 and len(jobs) >= free:
                continue  # maybe more are due: claim again as soon as a thread is free
            self.wake.wait(self._idle_seconds() if free > 0 else self.poll_seconds)
            close_old_connections()
        self.pool.shutdown(wait=True)
        if listener is not None:
            listener.join(timeout=2 * self.poll_seconds)
        connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def _listen(self) -> None:
        """LISTEN on its own autocommit connection; every notification wakes the loop."""
        import psycopg

        params = connections["default"].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        while not self.stopping.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as listener:
                    listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.wake.set()  # rows may have come while (re)connecting
                    while not self.stopping.is_set():
                        for _ in listener.notifies(timeout=self.poll_seconds):
                            self.wake.set()
            except Exception:
                logger.exception("LISTEN %s failed; retrying", NOTIFY_CHANNEL)
                self.stopping.wait(self.poll_seconds)

    def _idle_seconds(self) -> float:
        """Until the next row falls due (or a lease expires), at most the poll interval."""
        due = PendingDelivery.objects.aggregate(
            next=Min(Greatest("due_at", Coalesce("lease_until", "due_at")))
        )["next"]
        if due is None:
            return self.poll_seconds
        return min(max((due - timezone.now()).total_seconds(), 0.01), self.poll_seconds)

    def _submit(self, job: list[int]) -> None:
        with self.lock:
            self.in_flight += 1
        # No request may start that could outlive the claim: past the lease
        # another worker may take the row and send it again.
        deadline = time.monotonic() + self.lease.total_seconds() - settings.QW_PUSH_TIMEOUT_SECONDS
        future = self.pool.submit(self._run_job, job, deadline)
        future.add_done_callback(self._job_done)

    def _job_done(self, _future: Future[None]) -> None:
        with self.lock:
            self.in_flight -= 1
        self.wake.set()

    # --- claiming -------------------------------------------------------------
    def _claim(self, *, limit: int) -> list[list[int]]:
        """Take up to `limit` jobs: one per push row, one per user's email batch.

        A user's email batch is every email row they have, due or not: the
        first row's delay decides when the batch goes (Zulip's batching), and
        later rows join it.
        """
        now = timezone.now()
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        with transaction.atomic():
            due = list(
                PendingDelivery.objects.select_for_update(skip_locked=True)
                .filter(free, due_at__lte=now)
                .order_by("due_at", "id")
                .values_list("id", "user_id", "channel")[:limit]
            )
            if not due:
                return []
            email_users = {user_id for _, user_id, channel in due if channel == Channel.EMAIL}
            batch_mates = (
                list(
                    PendingDelivery.objects.select_for_update(skip_locked=True)
                    .filter(free, channel=Channel.EMAIL, user_id__in=email_users)
                    .exclude(id__in=[row_id for row_id, _, _ in due])
                    .values_list("id", "user_id", "channel")
                )
                if email_users
                else []
            )
            rows = due + batch_mates
            PendingDelivery.objects.filter(id__in=[row_id for row_id, _, _ in rows]).update(
                lease_until=now + self.lease, lease_token=self.token
            )
        jobs: list[list[int]] = []
        emails: dict[int, list[int]] = defaultdict(list)
        for row_id, user_id, channel in rows:
            if channel == Channel.EMAIL:
                emails[user_id].append(row_id)
            else:
                jobs.append([row_id])
        return jobs + list(emails.values())

    # --- one job --------------------------------------------------------------
    def _run_job(self, row_ids: list[int], deadline: float) -> None:
        try:
            rows = pending_rows(row_ids)
            if not rows:
                return  # deleted with their message or notification meanwhile
            send = self._send_push if rows[0].channel == Channel.PUSH else self._send_email
            outcome = send(rows, deadline)
            self._finish(rows[0].channel, outcome)
        except Exception:
            logger.exception("offline delivery of rows %s failed", row_ids)
        finally:
            close_old_connections()
            connection.close()

    def _relevant(
        self, rows: list[PendingDelivery], prefs: dict[int, Preferences]
    ) -> tuple[list[Item], list[PendingDelivery]]:
        """Re-check everything (SPEC §10): → (what still goes out, rows suppressed)."""
        now = timezone.now()
        items: list[Item] = []
        suppressed: list[PendingDelivery] = []
        for row in rows:
            item = item_of(row) if row.user.is_active else None
            if item is not None and prefs[row.user_id].allows(
                row.channel, direct_or_mention=item.direct_or_mention
            ):
                items.append(item)
            else:
                suppressed.append(row)
        muted = muted_among(pairs=[i.mute_key for i in items if i.mute_key], now=now)
        suppressed += [i.row for i in items if i.mute_key in muted]
        return [i for i in items if i.mute_key not in muted], suppressed

    def _send_push(self, rows: list[PendingDelivery], deadline: float) -> Outcome:
        (row,) = rows
        outcome = Outcome.empty()
        prefs = preferences_of(user_ids=[row.user_id])
        items, outcome.suppressed = self._relevant(rows, prefs)
        if not items:
            return outcome
        (item,) = items
        subscriptions = list(PushSubscription.objects.filter(user_id=row.user_id))
        # Back on a page meanwhile: the message arrives live there.
        if not subscriptions or webpush.vapid() is None or not away_among([row.user_id]):
            outcome.suppressed.append(row)
            return outcome
        quiet = prefs[row.user_id].quiet_hours
        end = quiet.end_if_inside(timezone.now()) if quiet else None
        if end is not None:
            outcome.later[row.id] = end
            return outcome
        payload = push_payload(item, hide_content=prefs[row.user_id].hide_content)
        accepted = retryable = False
        for subscription in subscriptions:
            if time.monotonic() > deadline:  # the claim ends before another send could
                retryable = True
                break
            result = webpush.send(
                endpoint=subscription.endpoint,
                p256dh=subscription.p256dh,
                auth=subscription.auth,
                payload=payload,
                topic=item.conversation,
            )
            _record_subscription(subscription, result)
            accepted |= result.accepted
            retryable |= not result.accepted and not result.gone
        # Sent once any device took it; the failed ones of that row are not
        # retried, or the devices that took it would show it twice.
        if accepted or not retryable:
            (outcome.sent if accepted else outcome.suppressed).append(row)
        else:
            outcome.retry.append(row)
        return outcome

    def _send_email(self, rows: list[PendingDelivery], deadline: float) -> Outcome:
        """One SMTP conversation, bounded by EMAIL_TIMEOUT (below the lease)."""
        outcome = Outcome.empty()
        user = rows[0].user
        prefs = preferences_of(user_ids=[user.id])
        items, outcome.suppressed = self._relevant(rows, prefs)
        if items and not user.email:
            outcome.suppressed += [item.row for item in items]
            items = []
        if not items:
            return outcome
        hide = prefs[user.id].hide_content
        groups: dict[str, mail.Group] = {}
        for item in sorted(items, key=lambda i: (i.created_at, i.row.id)):
            group = groups.setdefault(item.group, mail.Group(item.label, item.link))
            group.items.append(
                mail.Item(
                    author=item.title if item.type == "chat_message" else "QuantumWorks",
                    text=HIDDEN_BODY if hide else item.text,
                    when=item.created_at,
                )
            )
        try:
            mail.missed_message_email(user=user, groups=list(groups.values())).send()
        except Exception as error:  # noqa: BLE001 (SMTP errors are many types; retried)
            logger.warning("missed-message email to user %s failed: %r", user.id, error)
            outcome.retry += [item.row for item in items]
            return outcome
        outcome.sent += [item.row for item in items]
        return outcome

    # --- bookkeeping ------------------------------------------------------------
    def _finish(self, channel: str, outcome: Outcome) -> None:
        now = timezone.now()
        failed = [r for r in outcome.retry if r.attempts + 1 >= settings.QW_NOTIFY_MAX_ATTEMPTS]
        retry = [r for r in outcome.retry if r not in failed]
        # Counted before the bookkeeping commits: whoever sees a row gone sees it counted.
        for row in outcome.sent:
            metrics.OFFLINE_DELIVERIES.labels(channel, "sent").inc()
            metrics.OFFLINE_DELAY.labels(channel).observe((now - row.created_at).total_seconds())
        for outcome_name, rows in (("suppressed", outcome.suppressed), ("failed", failed)):
            if rows:
                metrics.OFFLINE_DELIVERIES.labels(channel, outcome_name).inc(len(rows))
        mine = PendingDelivery.objects.filter(lease_token=self.token)
        with transaction.atomic():
            done = [row.id for row in outcome.sent + outcome.suppressed + failed]
            if done:
                mine.filter(id__in=done).delete()
            for row in retry:
                mine.filter(id=row.id).update(
                    due_at=now + backoff(row.attempts + 1),
                    attempts=F("attempts") + 1,
                    lease_until=None,
                    lease_token="",
                )
            for row_id, when in outcome.later.items():
                mine.filter(id=row_id).update(due_at=when, lease_until=None, lease_token="")


def backoff(attempts: int) -> timedelta:
    """Exponential with jitter: 5 s, 10 s, 20 s … (QW_NOTIFY_BACKOFF_SECONDS) capped at an hour."""
    cap = min(settings.QW_NOTIFY_BACKOFF_SECONDS * 2 ** (attempts - 1), BACKOFF_CAP_SECONDS)
    return timedelta(seconds=random.uniform(cap / 2, cap))  # noqa: S311 (jitter)


def _record_subscription(subscription: PushSubscription, result: webpush.PushResult) -> None:
    if result.gone:
        subscription.delete()
    elif result.accepted:
        PushSubscription.objects.filter(id=subscription.id).update(
            last_success_at=timezone.now(), failure_count=0
        )
    else:
        PushSubscription.objects.filter(id=subscription.id).update(
            failure_count=F("failure_count") + 1
        )


# --- in the demo process ------------------------------------------------------------
_in_process: Worker | None = None


def start_in_process() -> Callable[[], None] | None:
    """The embedded default (`make run`): the same loop on a thread of the server."""
    global _in_process
    if not settings.QW_NOTIFY_IN_PROCESS or _in_process is not None:
        return None
    worker = _in_process = Worker()
    threading.Thread(target=worker.run, name="notify-worker", daemon=True).start()
    return worker.stop
