"""Sequence, jitter and storage details of the client, and tabs handing over mid-flight (issue 11)."""

from __future__ import annotations

import pytest
from django.db import transaction
from playwright.sync_api import expect
from rest_framework_simplejwt.tokens import AccessToken

from chat.models import ChatMessage
from chat.services import message_send
from tasks.services import project_create, task_create, task_set_status
from tests.browser.conftest import sign_in, wait_ready
from tests.browser.test_client_defects import send_rest, start_client
from tests.browser.test_demo_pages import off_the_browser_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_frame_lost_on_the_way_is_asked_for_again_with_resume(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    page = contexts().new_page()
    page.goto(f"{server().http_url}/login/")
    dropped, sent = [], []

    def lose_the_first_chat_message(route):
        upstream = route.connect_to_server()

        def to_page(message):
            if '"chat_message"' in str(message) and not dropped:
                dropped.append(message)
                return
            route.send(message)

        def to_server(message):
            sent.append(message)
            upstream.send(message)

        upstream.on_message(to_page)
        route.on_message(to_server)

    page.route_web_socket("**/ws/**", lose_the_first_chat_message)
    start_client(page, alice)
    page.wait_for_function("window.rt.state === 'open'")
    off_the_browser_thread(lambda: [send_rest(bob, alice, text) for text in ("one", "two")])

    page.wait_for_function("window.rec.filter((e) => e.type === 'chat_message').length === 2")
    contents = page.evaluate(
        "window.rec.filter((e) => e.type === 'chat_message').map((e) => [e.seq, e.content])"
    )
    assert contents == [[1, "one"], [2, "two"]]
    assert len(dropped) == 1 and any('"resume"' in str(m) for m in sent)


def test_a_task_change_seen_as_group_and_personal_copy_is_shown_once(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    project = project_create(author=alice, title="Website")
    task = task_create(actor=alice, project=project, title="Build API", freelancer_id=bob.id)
    page = contexts().new_page()
    page.goto(f"{server().http_url}/login/")
    start_client(page, alice)
    page.wait_for_function("window.rt.state === 'open'")
    page.evaluate(f"window.rt.send({{ type: 'subscribe', channel: 'task:{task.id}' }})")
    page.wait_for_function("window.rec.some((e) => e.type === 'subscribed')")

    off_the_browser_thread(
        lambda: task_set_status(task_id=task.id, status="in_progress", actor=bob)
    )
    off_the_browser_thread(lambda: task_set_status(task_id=task.id, status="review", actor=bob))
    page.wait_for_function(
        "window.rec.some((e) => e.type === 'task_status_update' && e.status === 'review')"
    )
    # A round trip after both changes: any second copy of them is here by now.
    page.evaluate("window.rt.send({ type: 'ping' })")
    page.wait_for_function("window.rec.some((e) => e.type === 'pong')")

    updates = page.evaluate(
        "window.rec.filter((e) => e.type === 'task_status_update').map((e) => e.status)"
    )
    assert updates == ["in_progress", "review"]


BATCHED_STORE = """async ([token]) => {
    const { QWRealtime, IndexedDBStore } = await import("/static/qw-realtime.js");
    const store = new IndexedDBStore("batch-test");
    const save = store.saveSeq.bind(store);
    window.writes = [];
    store.saveSeq = (n) => { window.writes.push(n); return save(n); };
    window.rt = new QWRealtime({ token, persist: store });
}"""


def test_a_burst_of_events_writes_last_seq_once_not_per_frame(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    page = contexts().new_page()
    page.goto(f"{server().http_url}/login/")
    page.evaluate(BATCHED_STORE, [str(AccessToken.for_user(alice))])
    page.wait_for_function("window.rt.state === 'open'")
    page.wait_for_function("window.writes.length === 1")  # the first seq the server gave

    def burst():
        with transaction.atomic():  # published together after the commit
            for n in range(30):
                message_send(sender_id=bob.id, receiver_id=alice.id, content=f"m{n}")

    off_the_browser_thread(burst)

    page.wait_for_function("window.writes.at(-1) === 30")
    stored = page.evaluate(
        """async () => {
            const { IndexedDBStore } = await import("/static/qw-store.js");
            return (await new IndexedDBStore("batch-test").load()).lastSeq;
        }"""
    )
    assert stored == 30
    assert len(page.evaluate("window.writes")) < 10


JITTERED = """async ([token, n]) => {
    const { QWRealtime } = await import("/static/qw-realtime.js");
    window.clients = [];
    window.delays = [];
    for (let i = 0; i < n; i += 1) {
        const rt = new QWRealtime({ token });
        // The first retry of each: the one the 4012 close scheduled.
        const off = rt.on("retry", (e) => { off(); window.delays.push(e.at - Date.now()); });
        window.clients.push(rt);
    }
}"""


def test_clients_of_a_restarting_server_reconnect_spread_over_one_to_two_seconds(
    make_user, server, contexts
):
    alice = make_user("alice")
    first = server(own=True)
    page = contexts().new_page()
    page.goto(f"{first.http_url}/login/")
    page.evaluate(JITTERED, [str(AccessToken.for_user(alice)), 6])
    page.wait_for_function("window.clients.every((rt) => rt.state === 'open')")

    first.terminate()  # SIGTERM: every socket closed with 4012

    page.wait_for_function("window.delays.length === 6")
    delays = page.evaluate("window.delays")
    assert all(900 <= d <= 2000 for d in delays), delays
    assert len({round(d) for d in delays}) > 1
    server(first.port)
    page.wait_for_function("window.clients.every((rt) => rt.state === 'open')", timeout=20_000)


# The leader tab is going away: what followers hand it now reaches nobody.
LEADER_TAKES_NOTHING = """() => {
    const deliver = window.qw.channel.onmessage;
    window.qw.channel.onmessage = (message) => {
        if (message.data.kind !== "send") deliver(message);
    };
}"""


def test_a_followers_message_survives_a_leader_that_never_took_it(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    base = server().http_url
    bob_page = sign_in(contexts(), base, "bob", f"/chat/?with={alice.id}")
    context = contexts()
    leader = sign_in(context, base, "alice", f"/chat/?with={bob.id}")
    follower = context.new_page()
    follower.goto(f"{base}/chat/?with={bob.id}")
    wait_ready(follower)
    assert follower.evaluate("window.qw.isLeader") is False
    leader.evaluate(LEADER_TAKES_NOTHING)

    follower.fill("#text", "written in the follower")
    follower.press("#text", "Enter")
    follower.evaluate("window.qw.saved()")
    follower.close()
    leader.close()
    third = context.new_page()
    third.goto(f"{base}/chat/?with={bob.id}")
    wait_ready(third)

    expect(bob_page.locator("#messages .content")).to_have_text(["written in the follower"])
    third.wait_for_function("window.qw.pending().length === 0")
    assert list(ChatMessage.objects.values_list("content", flat=True)) == [
        "written in the follower"
    ]


def test_a_followers_read_receipt_during_a_hand_over_is_not_lost(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    off_the_browser_thread(lambda: send_rest(bob, alice, "read me"))
    base = server().http_url
    bob_page = sign_in(contexts(), base, "bob", f"/chat/?with={alice.id}")
    expect(bob_page.locator(".msg.mine .tick")).to_have_text("✓")
    context = contexts()
    leader = sign_in(context, base, "alice", "/chat/")
    follower = context.new_page()
    follower.goto(f"{base}/chat/")
    wait_ready(follower)
    leader.evaluate(LEADER_TAKES_NOTHING)

    follower.click(f"[data-key='user:{bob.id}']")
    expect(follower.locator("#messages .content")).to_have_text(["read me"])
    leader.close()

    expect(bob_page.locator(".msg.mine .tick")).to_have_text("✓✓ read")
    follower.wait_for_function("window.qw.isLeader")


DROP_RELAYED_CHAT = """() => {
    const deliver = window.qw.channel.onmessage;
    window.qw.channel.onmessage = (message) => {
        const { kind, event } = message.data;
        if (kind === "event" && event.type === "chat_message" && !window.lost) {
            window.lost = event;  // in flight when the leader went away
            return;
        }
        deliver(message);
    };
}"""


def test_a_frame_in_flight_to_a_follower_at_hand_over_is_shown_after_it(
    make_user, server, contexts
):
    alice, bob = make_user("alice"), make_user("bob")
    base = server().http_url
    context = contexts()
    leader = sign_in(context, base, "alice", f"/chat/?with={bob.id}")
    follower = context.new_page()
    follower.goto(f"{base}/chat/?with={bob.id}")
    wait_ready(follower)
    follower.evaluate(DROP_RELAYED_CHAT)

    off_the_browser_thread(lambda: send_rest(bob, alice, "in flight"))
    expect(leader.locator("#messages .content")).to_have_text(["in flight"])
    follower.wait_for_function("window.lost !== undefined")
    leader.evaluate("window.qw.saved()")
    leader.close()

    expect(follower.locator("#messages .content")).to_have_text(["in flight"])
    assert follower.evaluate("window.qw.isLeader")
