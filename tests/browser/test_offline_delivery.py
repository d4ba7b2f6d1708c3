"""SPEC §10 in a real Chromium: the service worker, the push switch, settings and mutes.

Chromium cannot subscribe to Web Push here: `pushManager.subscribe()` needs
the browser vendor's push service (FCM for Chromium), which this machine
cannot reach. So the push that reaches the service worker is delivered
through the DevTools protocol (`ServiceWorker.deliverPushMessage`), the way a
push service would hand it to the browser; the server-side half (VAPID,
aes128gcm, the push service's answers) is covered against a local push
service in notifications/tests/test_offline_push.py.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from chat.services import message_send
from notifications import webpush
from notifications.models import ConversationMute, NotificationSettings, PushSubscription
from tests.browser.conftest import sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def base(server):
    return server(QW_VAPID_PRIVATE_KEY=webpush.generate_private_key()).http_url


def test_the_service_worker_registers_and_shows_a_push_that_opens_its_link(
    make_user, base, contexts
):
    make_user("alice")
    context = contexts()
    context.grant_permissions(["notifications"], origin=base)
    page = sign_in(context, base, "alice", "/notifications/")

    script_url = page.evaluate(
        """async () => {
            const { registerWorker } = await import("/static/qw-push.js");
            const registration = await registerWorker();
            return registration.active.scriptURL;
        }"""
    )
    assert script_url == f"{base}/static/qw-sw.js"

    devtools = context.new_cdp_session(page)
    registrations = []
    devtools.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(event["registrations"]),
    )
    devtools.send("ServiceWorker.enable")

    def ours():
        return [r for r in registrations if r["scopeURL"] == f"{base}/static/"]

    for _ in range(100):  # the events arrive while Playwright waits on the page
        if ours():
            break
        page.wait_for_timeout(50)
    registration = ours()[0]
    payload = {
        "type": "chat_message",
        "title": "bob",
        "body": "<b>not html</b>",
        "link": f"{base}/chat/?with=2",
        "tag": "dm-2",
    }
    devtools.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": base,
            "registrationId": registration["registrationId"],
            "data": json.dumps(payload),
        },
    )
    shown = page.wait_for_function(
        """async () => {
            const registration = await navigator.serviceWorker.getRegistration("/static/");
            const [n] = await registration.getNotifications();
            return n && { title: n.title, body: n.body, tag: n.tag, link: n.data.link };
        }"""
    ).json_value()
    assert shown == {
        "title": "bob",
        "body": "<b>not html</b>",
        "tag": "dm-2",
        "link": f"{base}/chat/?with=2",
    }


def test_the_push_switch_asks_the_browser_and_says_why_it_could_not(make_user, base, contexts):
    alice = make_user("alice")
    context = contexts()
    context.grant_permissions(["notifications"], origin=base)
    page = sign_in(context, base, "alice", "/notifications/")

    switch = page.get_by_role("switch", name="Notify me on this device")
    expect(switch).not_to_be_checked()
    switch.click()
    status = page.locator("#push-status")
    expect(status).not_to_have_text("", timeout=60_000)
    if "push service refused" in status.inner_text():
        # This machine cannot reach Chromium's push service (FCM): the browser
        # refuses, the switch goes back off, and the server stored nothing.
        expect(switch).not_to_be_checked()
        assert not PushSubscription.objects.filter(user=alice).exists()
    else:  # with a network: subscribed, and the server has this device's endpoint
        expect(switch).to_be_checked()
        (stored,) = PushSubscription.objects.filter(user=alice)
        assert stored.endpoint.startswith("https://")


def test_the_settings_panel_saves_and_a_conversation_can_be_muted(make_user, base, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    message_send(sender_id=bob.id, receiver_id=alice.id, content="hi")
    page = sign_in(contexts(), base, "alice", "/notifications/")
    page.wait_for_selector("#settings-form[data-ready='1']")

    page.get_by_label("Email").select_option("off")
    page.get_by_label("Hide message text").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-status")).to_have_text("Saved.")
    saved = NotificationSettings.objects.get(user=alice)
    assert (saved.email, saved.hide_content, saved.quiet_start) == ("off", True, None)

    page.goto(f"{base}/chat/?with={bob.id}")
    mute = page.get_by_role("button", name="Mute conversation")
    expect(mute).to_have_attribute("aria-pressed", "false")
    mute.click()
    expect(mute).to_have_attribute("aria-pressed", "true")
    assert ConversationMute.objects.filter(user=alice, counterpart=bob).exists()
    page.reload()
    expect(page.get_by_role("button", name="Mute conversation")).to_have_attribute(
        "aria-pressed", "true"
    )
