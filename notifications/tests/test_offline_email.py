"""Missed-message email end to end (SPEC §10): a real SMTP server, the real worker loop.

bob writes to alice over REST while she has no socket open; the worker sends
through Django's SMTP backend (EMAIL_URL) to aiosmtpd. A negative ("no email")
is asserted only after the worker has dealt with every pending row: the rows
are deleted after the decision to send or not, so their absence is the barrier.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from conftest import authed_client
from notifications.models import Level, NotificationSettings, PendingDelivery
from notifications.tests.offline_kit import eventually
from notifications.tests.offline_kit import send_over_rest as send

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def pair(make_user, settings, smtp, offline_worker):
    settings.QW_EMAIL_DELAY_SECONDS = 1.5
    settings.QW_PUBLIC_URL = "https://qw.example.com"
    alice, bob = make_user("alice"), make_user("bob")
    # Only the email channel in these tests: push has no subscription anyway.
    offline_worker()
    return alice, bob


def settled(user) -> bool:
    """Every pending delivery of the user has been decided (sent or suppressed)."""
    return not PendingDelivery.objects.filter(user=user).exists()


def emails_sent_metric() -> float:
    """qw_offline_deliveries_total{channel="email",outcome="sent"} as /metrics shows it."""
    for family in text_string_to_metric_families(APIClient().get("/metrics").content.decode()):
        for sample in family.samples:
            if sample.name == "qw_offline_deliveries_total" and sample.labels == {
                "channel": "email",
                "outcome": "sent",
            }:
                return sample.value
    return 0.0


def text_and_html(message) -> tuple[str, str]:
    return (
        message.get_body(("plain",)).get_content(),
        message.get_body(("html",)).get_content(),
    )


def test_a_message_to_someone_away_is_emailed_once_after_the_delay(pair, smtp):
    alice, bob = pair
    sent_before = emails_sent_metric()
    send(bob, alice, "Can you look at <b>task 7</b> & the spec?")
    assert PendingDelivery.objects.filter(user=alice, channel="email").count() == 1

    (email,) = eventually(lambda: smtp.messages, what="the missed-message email")
    eventually(lambda: settled(alice), what="alice's deliveries settled")
    assert len(smtp.messages) == 1
    assert email["To"] == "alice@example.com"
    assert "bob" in email["Subject"]
    text, html = text_and_html(email)
    assert "Can you look at <b>task 7</b> & the spec?" in text
    # HTML escaped, never rendered
    assert "Can you look at &lt;b&gt;task 7&lt;/b&gt; &amp; the spec?" in html
    assert "<b>task 7</b>" not in html
    assert f"https://qw.example.com/chat/?with={bob.id}" in text
    # RFC 8058 one-click unsubscribe
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = email["List-Unsubscribe"].strip().strip("<>")
    assert unsubscribe.startswith("https://qw.example.com/email/unsubscribe/")
    assert unsubscribe in text
    assert emails_sent_metric() == sent_before + 1


def test_a_message_read_on_another_device_before_the_delay_sends_nothing(pair, smtp):
    alice, bob = pair
    message_id = send(bob, alice, "read me on your phone")
    # alice reads it on her phone (REST read receipt) within the delay
    read = authed_client(alice).post(f"/api/chat/messages/{message_id}/read/")
    assert read.status_code == 200, read.content

    eventually(lambda: settled(alice), what="alice's deliveries settled")
    assert smtp.messages == []


def test_three_messages_in_the_delay_make_one_email(pair, smtp):
    alice, bob = pair
    for content in ("first", "second", "third"):
        send(bob, alice, content)

    eventually(lambda: smtp.messages, what="the email")
    eventually(lambda: settled(alice), what="alice's deliveries settled")
    (email,) = smtp.messages
    text, _ = text_and_html(email)
    assert text.index("first") < text.index("second") < text.index("third")


def test_the_unsubscribe_link_turns_email_off_without_signing_in(pair, smtp):
    alice, bob = pair
    send(bob, alice, "hello")
    (email,) = eventually(lambda: smtp.messages, what="the email")
    path = urlsplit(email["List-Unsubscribe"].strip().strip("<>")).path
    anonymous = APIClient(enforce_csrf_checks=True)

    page = anonymous.get(path)
    assert page.status_code == 200
    assert b"Turn off email notifications" in page.content
    assert not NotificationSettings.objects.filter(user=alice, email=Level.OFF).exists()

    # The mail client's RFC 8058 one-click POST: no session, no CSRF token.
    done = anonymous.post(
        path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert done.status_code == 200
    assert NotificationSettings.objects.get(user=alice).email == Level.OFF

    send(bob, alice, "after unsubscribing")
    eventually(lambda: settled(alice), what="alice's deliveries settled")
    assert len(smtp.messages) == 1


def test_a_forged_unsubscribe_link_is_a_404_and_changes_nothing(pair):
    alice, _ = pair
    anonymous = APIClient()
    assert anonymous.post(f"/email/unsubscribe/{alice.id}/").status_code == 404
    assert anonymous.get("/email/unsubscribe/not-a-token/").status_code == 404
    assert not NotificationSettings.objects.filter(user=alice).exists()


def test_hide_content_keeps_the_text_out_of_the_email(pair, smtp):
    alice, bob = pair
    authed_client(alice).patch("/api/notification-settings/", {"hide_content": True}, format="json")
    send(bob, alice, "the secret plan")
    (email,) = eventually(lambda: smtp.messages, what="the email")
    text, html = text_and_html(email)
    assert "the secret plan" not in text + html
    assert "New message" in text


def test_email_off_sends_nothing(pair, smtp):
    alice, bob = pair
    authed_client(alice).patch("/api/notification-settings/", {"email": "off"}, format="json")
    send(bob, alice, "nobody reads this by email")
    eventually(lambda: settled(alice), what="alice's deliveries settled")
    assert smtp.messages == []
