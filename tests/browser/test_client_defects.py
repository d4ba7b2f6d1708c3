"""What a person broke in the client before (issue 11), in a real browser against real servers."""

from __future__ import annotations

import os
import re
import signal
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from chat.models import ChatMessage
from conftest import authed_client
from tasks.services import project_create, task_create, task_set_status
from tests.browser.conftest import sign_in, wait_ready
from tests.browser.test_demo_pages import off_the_browser_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def send_rest(sender, receiver, content: str) -> None:
    response = authed_client(sender).post(
        "/api/chat/messages/", {"receiver_id": receiver.id, "content": content}, format="json"
    )
    assert response.status_code == 201, response.content


# A bare QWRealtime in a page of the server; every frame and client event lands in window.rec.
START_CLIENT = """async ([token, refresh, options]) => {
    const { QWRealtime } = await import("/static/qw-realtime.js");
    window.rec = [];
    window.rt = new QWRealtime({ token, refreshToken: refresh, ...options });
    window.rt.on("*", (event) => window.rec.push(event));
}"""


def start_client(page, user, **options):
    page.evaluate(
        START_CLIENT, [str(AccessToken.for_user(user)), str(RefreshToken.for_user(user)), options]
    )


def test_an_oversized_paste_is_refused_on_the_page_and_a_rejected_message_never_blocks_the_rest(
    make_user, server, contexts
):
    alice, bob = make_user("alice"), make_user("bob")
    base = server().http_url
    bob_page = sign_in(contexts(), base, "bob", f"/chat/?with={alice.id}")
    alice_page = sign_in(contexts(), base, "alice", "/chat/?with=987654")

    alice_page.fill("#text", "to nobody")
    alice_page.press("#text", "Enter")
    expect(alice_page.locator(".msg.mine .tick")).to_have_text("not sent (not_found)")

    sockets = []
    alice_page.on("websocket", lambda socket: sockets.append(socket))
    alice_page.goto(f"{base}/chat/?with={bob.id}")
    wait_ready(alice_page)
    alice_page.fill("#text", "x" * (72 * 1024))
    alice_page.press("#text", "Enter")
    expect(alice_page.locator("#composer-error")).to_contain_text(
        "Not sent: The message is 73,728 characters"
    )
    assert len(alice_page.input_value("#text")) == 72 * 1024
    alice_page.fill("#text", "after the paste")
    alice_page.press("#text", "Enter")

    expect(bob_page.locator("#messages .content")).to_have_text(["after the paste"])
    expect(alice_page.locator(".msg.mine .tick")).to_have_text("✓✓ read")
    alice_page.wait_for_function("window.qw.pending().length === 0")
    assert alice_page.evaluate("window.qw.state") == "open"
    assert len(sockets) == 1  # never reconnected
    assert list(ChatMessage.objects.values_list("content", flat=True)) == ["after the paste"]


def test_a_late_replay_is_shown_in_server_order_above_the_history(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    base = server().http_url
    bob_context = contexts()
    first = sign_in(bob_context, base, "bob", f"/chat/?with={alice.id}")
    first.evaluate("window.qw.saved()")
    first.close()
    off_the_browser_thread(lambda: [send_rest(alice, bob, f"m{n:02d}") for n in range(60)])

    again = bob_context.new_page()
    again.goto(f"{base}/chat/?with={alice.id}")
    wait_ready(again)

    expected = [f"m{n:02d}" for n in range(60)]
    expect(again.locator("#messages .content")).to_have_text(expected)


def test_older_messages_load_when_scrolling_up(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    off_the_browser_thread(lambda: [send_rest(alice, bob, f"m{n:02d}") for n in range(60)])
    page = sign_in(contexts(), server().http_url, "bob", f"/chat/?with={alice.id}")
    expect(page.locator("#messages .content")).to_have_count(50)

    page.locator("#messages").evaluate("(box) => { box.scrollTop = 0; }")

    expect(page.locator("#messages .content")).to_have_text([f"m{n:02d}" for n in range(60)])
    expect(page.locator("#older")).to_be_hidden()


def test_a_message_typed_offline_shows_below_one_sent_before_it(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    first = server(own=True)
    bob_page = sign_in(contexts(), first.http_url, "bob", f"/chat/?with={alice.id}")
    first.kill()
    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "connecting")
    off_the_browser_thread(lambda: send_rest(alice, bob, "sent first, by alice"))
    bob_page.fill("#text", "typed offline, by bob")
    bob_page.press("#text", "Enter")

    server(first.port)

    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "open", timeout=30_000)
    expect(bob_page.locator("#messages .content")).to_have_text(
        ["sent first, by alice", "typed offline, by bob"]
    )
    expect(bob_page.locator(".msg.mine .tick")).not_to_have_text("sending")


def test_opening_a_conversation_clears_its_unread_badge(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    off_the_browser_thread(lambda: send_rest(alice, bob, "first"))
    page = sign_in(contexts(), server().http_url, "bob", "/chat/")
    off_the_browser_thread(lambda: send_rest(alice, bob, "second"))
    badge = page.locator(f"[data-key='user:{alice.id}'] .badge")
    expect(badge).to_have_text("2")

    page.click(f"[data-key='user:{alice.id}']")

    expect(page.locator("#messages .content")).to_have_text(["first", "second"])
    expect(badge).to_be_hidden()
    page.wait_for_function(
        """async () => {
            const { access } = JSON.parse(localStorage.getItem("qw.tokens"));
            const r = await fetch("/api/chat/conversations/", { headers: { Authorization: `Bearer ${access}` } });
            return (await r.json())[0].unread_count === 0;
        }""",
        polling=200,
    )
    page.reload()
    wait_ready(page)
    expect(badge).to_be_hidden()


def test_sign_out_ends_the_session_on_the_server_and_in_every_tab(make_user, server, contexts):
    make_user("alice")
    bob = make_user("bob")
    base = server().http_url
    context = contexts()
    first = sign_in(context, base, "alice", f"/chat/?with={bob.id}")
    second = context.new_page()
    second.goto(f"{base}/notifications/")
    wait_ready(second)
    refresh = first.evaluate("JSON.parse(localStorage.getItem('qw.tokens')).refresh")

    second.click("#sign-out")

    for page in (first, second):
        expect(page).to_have_url(re.compile(r"/login/\?reason=signed_out&next="))
        expect(page.locator("#login-reason")).to_have_text("You signed out.")
    status = first.evaluate(
        """async (refresh) => (await fetch("/api/auth/token/refresh/", {
            method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ refresh }) })).status""",
        refresh,
    )
    assert status == 401
    assert first.evaluate("localStorage.getItem('qw.tokens')") is None


def test_the_login_page_says_why_and_hides_demo_passwords_without_debug(server, contexts):
    page = contexts().new_page()
    page.goto(f"{server().http_url}/login/?reason=inactive")

    expect(page.locator("#login-reason")).to_have_text(
        "Your account has been deactivated. Contact an administrator."
    )
    expect(page.locator("#demo-users")).to_have_count(0)
    boxes = [page.locator(f"#{name}").bounding_box() for name in ("username", "password")]
    assert boxes[0]["x"] == boxes[1]["x"] and boxes[0]["width"] == boxes[1]["width"]


def test_subscriptions_are_restored_after_a_server_restart(make_user, server, contexts):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    carol.is_staff = True
    carol.save(update_fields=["is_staff"])
    project = project_create(author=alice, title="Website")
    task = task_create(actor=alice, project=project, title="Build API", freelancer_id=bob.id)
    first = server(own=True)
    page = contexts().new_page()
    page.goto(f"{first.http_url}/login/")
    start_client(page, carol, backoffBaseMs=100)
    page.wait_for_function("window.rt.state === 'open'")
    page.evaluate(f"window.rt.send({{ type: 'subscribe', channel: 'task:{task.id}' }})")
    page.wait_for_function("window.rec.some((e) => e.type === 'subscribed')")

    first.kill()
    page.wait_for_function("window.rt.state === 'connecting'")
    server(first.port)
    page.wait_for_function("window.rt.state === 'open'", timeout=30_000)
    page.wait_for_function("window.rec.filter((e) => e.type === 'subscribed').length === 2")
    off_the_browser_thread(
        lambda: task_set_status(task_id=task.id, status="in_progress", actor=bob)
    )

    page.wait_for_function(
        "window.rec.some((e) => e.type === 'task_status_update' && e.status === 'in_progress')"
    )


SHARED = """async ([token, refresh]) => {
    const { QWSharedRealtime } = await import("/static/qw-shared.js");
    window.rec = [];
    window.rt = new QWSharedRealtime({ token, refreshToken: refresh });
    window.rt.on("*", (event) => window.rec.push(event));
}"""


def test_subscriptions_are_restored_after_a_leader_hand_over(make_user, server, contexts):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    carol.is_staff = True
    carol.save(update_fields=["is_staff"])
    project = project_create(author=alice, title="Website")
    task = task_create(actor=alice, project=project, title="Build API", freelancer_id=bob.id)
    base = server().http_url
    context = contexts()
    tokens = [str(AccessToken.for_user(carol)), str(RefreshToken.for_user(carol))]
    leader, follower = context.new_page(), context.new_page()
    for page in (leader, follower):
        page.goto(f"{base}/login/")
        page.evaluate(SHARED, tokens)
        page.wait_for_function("window.rt.state === 'open'")
    assert (leader.evaluate("window.rt.isLeader"), follower.evaluate("window.rt.isLeader")) == (
        True,
        False,
    )
    follower.evaluate(f"window.rt.send({{ type: 'subscribe', channel: 'task:{task.id}' }})")
    follower.wait_for_function("window.rec.some((e) => e.type === 'subscribed')")

    leader.close()
    follower.wait_for_function("window.rt.isLeader && window.rt.state === 'open'")
    follower.wait_for_function("window.rec.filter((e) => e.type === 'subscribed').length === 2")
    off_the_browser_thread(
        lambda: task_set_status(task_id=task.id, status="in_progress", actor=bob)
    )

    follower.wait_for_function(
        "window.rec.some((e) => e.type === 'task_status_update' && e.status === 'in_progress')"
    )


def test_backoff_keeps_growing_against_a_server_that_closes_right_after_auth(
    make_user, server, contexts
):
    alice = make_user("alice")
    base = server().http_url
    page = contexts().new_page()
    page.goto(f"{base}/login/")
    opened = []

    def close_after_auth(route):
        upstream = route.connect_to_server()
        opened.append(route)

        def relay(message):
            route.send(message)
            if '"authenticated"' in str(message):
                route.close(code=1011)
                upstream.close()

        upstream.on_message(relay)

    page.route_web_socket("**/ws/**", close_after_auth)
    start_client(page, alice, backoffBaseMs=40, healthyMs=60_000)

    page.wait_for_function("window.rt.backoff.attempt >= 5", timeout=20_000)
    authenticated = page.evaluate("window.rec.filter((e) => e.type === 'authenticated').length")
    assert authenticated >= 5 and len(opened) >= 5


def test_a_frozen_server_is_detected_within_two_ping_intervals_and_a_hung_handshake_is_retried(
    make_user, server, contexts
):
    alice = make_user("alice")
    process = server(own=True)
    page = contexts().new_page()
    page.goto(f"{process.http_url}/login/")
    start_client(page, alice, pingIntervalMs=500, handshakeTimeoutMs=500, backoffBaseMs=50)
    page.wait_for_function("window.rt.state === 'open'")
    os.kill(process.process.pid, signal.SIGSTOP)
    try:
        # Two 0.5 s intervals, not the server's 30 s heartbeat.
        page.wait_for_function("window.rt.state === 'connecting'", timeout=5_000)
        # A connection the frozen server accepts in the kernel but never answers is given up and retried.
        page.wait_for_function(
            "window.rec.filter((e) => e.type === 'retry').length >= 3", timeout=10_000
        )
    finally:
        os.kill(process.process.pid, signal.SIGCONT)
    page.wait_for_function("window.rt.state === 'open'", timeout=20_000)


def test_a_token_refresh_that_meets_a_503_is_retried_not_signed_out(make_user, server, contexts):
    alice = make_user("alice")
    page = contexts().new_page()
    page.goto(f"{server().http_url}/login/")
    failures = []

    def unavailable_twice(route):
        if len(failures) < 2:
            failures.append(route.request.url)
            route.fulfill(status=503, body="maintenance")
        else:
            route.continue_()

    page.route("**/api/auth/token/refresh/", unavailable_twice)
    expired = AccessToken.for_user(alice)
    expired.set_exp(lifetime=-timedelta(seconds=5))
    page.evaluate(
        START_CLIENT, [str(expired), str(RefreshToken.for_user(alice)), {"backoffBaseMs": 100}]
    )

    page.wait_for_function("window.rt.state === 'open'")
    assert len(failures) == 2
    assert page.evaluate("window.rec.filter((e) => e.type === 'auth_error').length") == 0
    assert page.evaluate("window.rec.filter((e) => e.type === 'tokens').length") == 1
