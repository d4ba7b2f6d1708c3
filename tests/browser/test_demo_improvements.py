"""The demo pages as a person meets them (issue 11): names, links, a board that can start work."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.services import users_deactivate
from tasks.models import Task
from tasks.services import project_create, task_create
from tests.browser.conftest import sign_in, wait_ready
from tests.browser.test_demo_pages import off_the_browser_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_conversation_is_started_by_picking_a_person_by_name(make_user, server, contexts):
    make_user("alice")
    bob = make_user("bob")
    base = server().http_url
    bob_page = sign_in(contexts(), base, "bob", "/chat/")
    alice_page = sign_in(contexts(), base, "alice", "/chat/")

    alice_page.fill("#people", "bo")
    alice_page.click("#people-results button:text-is('bob')")
    expect(alice_page.locator("#title")).to_have_text("bob")
    expect(alice_page.locator("#messages .empty")).to_have_text("No messages yet. Say hello.")
    alice_page.fill("#text", "hello bob")
    alice_page.press("#text", "Enter")

    expect(bob_page.locator("[data-key^='user:'] span").first).to_have_text("alice")
    expect(alice_page.locator(f"[data-key='user:{bob.id}']")).to_have_text(re.compile("^bob"))
    alice_page.fill("#people", "nobody-here")
    expect(alice_page.locator("#people-results")).to_have_text("Nobody by that name.")


def test_the_board_shows_an_empty_state_then_creates_a_task_that_wraps(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    project_create(author=alice, title="Website")
    page = sign_in(contexts(), server().http_url, "alice", "/tasks/")
    expect(page.locator("#board-empty")).to_be_visible()
    title = "Migrate-the-customer-accounts-from-the-legacy-billing-system-" * 3

    page.fill("#new-task input[name=title]", title)
    page.fill("#new-task input[name=freelancer]", "bob")
    page.click("#new-task button[type=submit]")

    card = page.locator("[data-status='open'] .card")
    expect(card.locator(".title")).to_have_text(title)
    expect(page.locator("#board-empty")).to_be_hidden()
    assert card.evaluate("(node) => node.scrollWidth <= node.clientWidth")
    task = Task.objects.get()
    assert (task.title, task.freelancer_id) == (title, bob.id)

    page.fill("#new-task input[name=title]", "For a stranger")
    page.fill("#new-task input[name=freelancer]", "nobody")
    page.click("#new-task button[type=submit]")
    expect(page.locator("#board-error")).to_have_text('Nobody is called "nobody".')
    assert Task.objects.count() == 1


def test_a_notification_links_to_its_task(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    project = project_create(author=alice, title="Website")
    task = task_create(actor=alice, project=project, title="Build API", freelancer_id=bob.id)
    base = server().http_url
    context = contexts()
    inbox = sign_in(context, base, "alice", "/notifications/")
    expect(inbox.locator("#list-empty")).to_be_visible()
    bob_board = sign_in(contexts(), base, "bob", "/tasks/")
    bob_board.click(f"[data-task-id='{task.id}'] button[data-to='in_progress']")
    expect(inbox.locator("a.toast")).to_have_attribute("href", f"/tasks/{task.id}")
    expect(inbox.locator("#list li.unread")).to_have_count(1)

    inbox.click("#list li a.title")

    expect(inbox).to_have_url(f"{base}/tasks/{task.id}")
    wait_ready(inbox)
    expect(inbox.locator(f"[data-task-id='{task.id}']")).to_have_class(re.compile("focus"))
    expect(inbox.locator("#unread-badge")).to_be_hidden()


def test_the_connection_pill_says_what_happens_to_messages_while_reconnecting(
    make_user, server, contexts
):
    make_user("alice")
    bob = make_user("bob")
    first = server(own=True)
    page = sign_in(contexts(), first.http_url, "alice", f"/chat/?with={bob.id}")
    pill = page.locator("#conn-state")
    expect(pill).to_have_text("Connected")

    first.kill()

    expect(pill).to_contain_text("Reconnecting… messages will be sent when back.")
    expect(pill).to_have_text(re.compile(r"Retrying in \d+ s\.$"))
    server(first.port)
    expect(pill).to_have_text("Connected", timeout=30_000)


def test_the_front_page_leads_in(server, contexts):
    page = contexts().new_page()
    page.goto(f"{server().http_url}/")

    expect(page.locator("h1")).to_have_text("Projects that move while you watch")
    page.click(".hero a.go")
    expect(page).to_have_url(re.compile(r"/login/\?next=/chat/$"))


def test_a_deactivated_user_lands_on_the_login_page_told_why(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    page = sign_in(contexts(), server().http_url, "alice", f"/chat/?with={bob.id}")

    off_the_browser_thread(lambda: users_deactivate(user_ids=[alice.id]))

    expect(page).to_have_url(re.compile(r"/login/\?reason=inactive&next="))
    expect(page.locator("#login-reason")).to_have_text(
        "Your account has been deactivated. Contact an administrator."
    )
