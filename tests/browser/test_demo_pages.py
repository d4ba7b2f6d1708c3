"""The demo pages and qw-realtime.js in a real browser against a real server (SPEC §8)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from playwright.sync_api import expect
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from chat.models import ChatMessage
from conftest import authed_client
from realtime.selectors import inbox_last_seq
from tasks.services import project_create, task_create
from testkit.waiting import eventually
from tests.browser.conftest import sign_in, wait_ready

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def off_the_browser_thread(call):
    """Run server-side code in a thread of its own: Playwright's loop runs in this one,
    and publishing after commit (async_to_sync) refuses a thread with a running loop."""

    def run():
        try:
            return call()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


HOSTILE = "<img src=x onerror=alert(1)> & <b>bold</b>"


def test_chat_message_shows_as_text_with_typing_and_read_ticks(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    base = server().http_url
    alice_page = sign_in(contexts(), base, "alice", f"/chat/?with={bob.id}")
    bob_page = sign_in(contexts(), base, "bob", f"/chat/?with={alice.id}")

    bob_page.fill("#text", "hello")
    expect(alice_page.locator("#typing")).to_have_text(re.compile("is typing…$"))

    bob_page.fill("#text", HOSTILE)
    bob_page.press("#text", "Enter")

    received = alice_page.locator("#messages .msg .content")
    expect(received).to_have_text([HOSTILE])
    assert alice_page.locator("#messages img, #messages b").count() == 0
    expect(bob_page.locator("#messages .msg.mine .tick")).to_have_text("✓✓ read")
    expect(alice_page.locator("#typing")).to_have_text("")
    assert alice_page.dialogs == [] and bob_page.dialogs == []
    message = ChatMessage.objects.get(sender=bob)
    assert (message.content, message.read_at is not None) == (HOSTILE, True)
    expect(alice_page.locator("#title")).to_have_text("bob")
    alice_page.screenshot(path="/tmp/qw-chat.png")
    bob_page.screenshot(path="/tmp/qw-chat-sender.png")


def test_status_change_on_the_board_moves_the_card_and_notifies_the_author(
    make_user, server, contexts
):
    alice, bob = make_user("alice"), make_user("bob")
    project = project_create(author=alice, title="Website")
    task = task_create(actor=alice, project=project, title="Build API", freelancer_id=bob.id)
    base = server().http_url
    alice_context = contexts()
    alice_board = sign_in(alice_context, base, "alice", "/tasks/")
    bob_board = sign_in(contexts(), base, "bob", "/tasks/")
    card = f"[data-task-id='{task.id}']"
    expect(alice_board.locator(f"[data-status='open'] {card}")).to_have_count(1)

    bob_board.click(f"{card} button[data-to='in_progress']")

    expect(alice_board.locator(f"[data-status='in_progress'] {card}")).to_have_count(1)
    expect(alice_board.locator(f"[data-status='open'] {card}")).to_have_count(0)
    expect(alice_board.locator(".toast")).to_contain_text("Build API")
    expect(alice_board.locator("#unread-badge")).to_have_text("1")
    expect(alice_board.locator("#unread-badge")).to_be_visible()
    alice_board.screenshot(path="/tmp/qw-tasks.png")

    alice_inbox = alice_context.new_page()
    alice_inbox.goto(f"{base}/notifications/")
    wait_ready(alice_inbox)
    expect(alice_inbox.locator("#list li.unread")).to_have_count(1)
    alice_inbox.screenshot(path="/tmp/qw-notifications.png")
    alice_inbox.click("#read-all")

    expect(alice_board.locator("#unread-badge")).to_be_hidden()
    expect(alice_inbox.locator("#list li.unread")).to_have_count(0)


def test_client_resumes_after_the_server_is_killed_and_shows_the_missed_message_once(
    make_user, server, contexts
):
    alice, bob = make_user("alice"), make_user("bob")
    first = server(own=True)
    bob_page = sign_in(contexts(), first.http_url, "bob", f"/chat/?with={alice.id}")

    first.kill()
    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "connecting")
    sent = off_the_browser_thread(
        lambda: authed_client(alice).post(
            "/api/chat/messages/",
            {"receiver_id": bob.id, "content": "sent while you were away"},
            format="json",
        )
    )
    assert sent.status_code == 201
    server(first.port)

    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "open", timeout=30_000)
    received = bob_page.locator("#messages .msg .content")
    expect(received).to_have_text(["sent while you were away"])
    # seq 1 the message, seq 2 the conversation_read of bob's own read receipt (SPEC §11)
    bob_page.wait_for_function("window.qw.lastSeq === 2")
    expect(received).to_have_count(1)


def test_message_written_offline_is_sent_once_after_the_tab_is_closed_and_reopened(
    make_user, server, contexts
):
    alice, bob = make_user("alice"), make_user("bob")
    first = server(own=True)
    bob_context = contexts()
    bob_page = sign_in(bob_context, first.http_url, "bob", f"/chat/?with={alice.id}")
    first.kill()
    expect(bob_page.locator("#conn-state")).to_have_attribute("data-state", "connecting")
    bob_page.fill("#text", "typed offline")
    bob_page.press("#text", "Enter")
    expect(bob_page.locator("#messages .msg.mine .tick")).to_have_text("sending")
    bob_page.evaluate("window.qw.saved()")
    bob_page.close()

    second = server(first.port)
    alice_page = sign_in(contexts(), second.http_url, "alice", f"/chat/?with={bob.id}")
    bob_again = bob_context.new_page()
    bob_again.goto(f"{second.http_url}/chat/?with={alice.id}")
    wait_ready(bob_again)

    expect(alice_page.locator("#messages .msg .content")).to_have_text(["typed offline"])
    expect(bob_again.locator("#messages .msg.mine .content")).to_have_text(["typed offline"])
    bob_again.wait_for_function("window.qw.pending().length === 0")
    assert list(ChatMessage.objects.values_list("content", flat=True)) == ["typed offline"]
    assert re.fullmatch(r"[0-9a-f-]{32,36}", ChatMessage.objects.get().client_msg_id)


CLIENT_UNTIL = """async ([token, refresh, until]) => {
    const { QWRealtime } = await import("/static/qw-realtime.js");
    return await new Promise((resolve) => {
        const seen = [];
        const rt = new QWRealtime({ token, refreshToken: refresh });
        const done = () => { rt.close(); resolve({ seen, token: rt.token }); };
        rt.on("tokens", () => seen.push("tokens"));
        rt.on("auth_error", (e) => { seen.push(`auth_error ${e.code}`); if (until === "auth_error") done(); });
        rt.on("authenticated", () => { seen.push("authenticated"); if (until === "authenticated") done(); });
    });
}"""


def test_client_refreshes_an_expired_token_and_stops_on_an_invalid_one(make_user, server, contexts):
    alice = make_user("alice")
    base = server().http_url
    page = contexts().new_page()
    page.goto(f"{base}/login/")
    expired = AccessToken.for_user(alice)
    expired.set_exp(lifetime=-timedelta(seconds=5))
    refresh = str(RefreshToken.for_user(alice))

    renewed = page.evaluate(CLIENT_UNTIL, [str(expired), refresh, "authenticated"])
    refused = page.evaluate(CLIENT_UNTIL, ["not-a-token", refresh, "auth_error"])

    assert renewed["seen"] == ["tokens", "authenticated"]
    assert AccessToken(renewed["token"])["user_id"] == str(alice.id)
    assert refused["seen"] == ["auth_error 4001"]


def test_tabs_of_one_browser_share_one_socket_and_the_next_tab_takes_over(
    make_user, server, contexts
):
    alice, bob = make_user("alice"), make_user("bob")
    base = server().http_url
    bob_page = sign_in(contexts(), base, "bob", f"/chat/?with={alice.id}")
    alice_context = contexts()
    first = sign_in(alice_context, base, "alice", f"/chat/?with={bob.id}")
    second = alice_context.new_page()
    second_sockets = []
    second.on("websocket", lambda socket: second_sockets.append(socket.url))
    second.goto(f"{base}/chat/?with={bob.id}")
    wait_ready(second)

    second.fill("#text", "from the second tab")
    second.press("#text", "Enter")
    expect(bob_page.locator("#messages .content")).to_have_text(["from the second tab"])
    expect(second.locator("#messages .msg.mine .tick")).not_to_have_text("sending")
    bob_page.fill("#text", "to both tabs")
    bob_page.press("#text", "Enter")
    for page in (first, second):
        expect(page.locator("#messages .content")).to_have_text(
            ["from the second tab", "to both tabs"]
        )
    assert (first.evaluate("window.qw.isLeader"), second.evaluate("window.qw.isLeader")) == (
        True,
        False,
    )
    assert second_sockets == []

    # Both messages read: alice's last events (bob's receipt, her own
    # conversation_read of SPEC §11) are in; the resume point is read once the
    # tab has shown her whole inbox.
    stored = eventually(
        lambda: off_the_browser_thread(
            lambda: (
                ChatMessage.objects.filter(read_at__isnull=False).count() == 2
                and inbox_last_seq(alice.id)
            )
        ),
        within=10,
        what="both messages read",
    )
    second.wait_for_function(f"window.qw.lastSeq === {stored}")
    seen = second.evaluate("window.qw.lastSeq")
    first.close()
    second.wait_for_function("window.qw.isLeader")
    expect(second.locator("#conn-state")).to_have_attribute("data-state", "open")
    bob_page.fill("#text", "after the handover")
    bob_page.press("#text", "Enter")

    expect(second.locator("#messages .content")).to_have_text(
        ["from the second tab", "to both tabs", "after the handover"]
    )
    assert len(second_sockets) == 1 and second_sockets[0].endswith(f"?last_seq={seen}")
    assert seen >= 2
