"""Screenshots of the demo pages for the README (docs/screenshots/), used as alice and bob.

Not part of the suite (pytest collects test_*.py only); run it by name:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/qw REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/pytest tests/browser/screenshots.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tasks.services import project_create, task_create, task_set_status
from tests.browser.conftest import sign_in, wait_ready
from tests.browser.test_client_defects import send_rest
from tests.browser.test_demo_pages import off_the_browser_thread

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_take_screenshots(make_user, server, contexts):
    OUT.mkdir(parents=True, exist_ok=True)
    alice, bob = make_user("alice"), make_user("bob")
    make_user("carol")
    project = project_create(author=alice, title="Website relaunch")
    api = task_create(
        actor=alice, project=project, title="Build the REST API", freelancer_id=bob.id
    )
    task_create(
        actor=alice,
        project=project,
        title="Write the migration guide for customers moving from the legacy "
        "self-hosted edition to the cloud platform, including the data export steps",
        freelancer_id=bob.id,
    )
    design = task_create(actor=alice, project=project, title="Design the landing page")
    off_the_browser_thread(
        lambda: send_rest(alice, bob, "Hi Bob! Could you start on the API today?")
    )
    off_the_browser_thread(lambda: send_rest(bob, alice, "Sure, I'll pick it up after lunch."))
    first = server()
    base = first.http_url

    front = contexts().new_page()
    front.goto(f"{base}/")
    front.screenshot(path=OUT / "front.png")
    front.goto(f"{base}/login/?reason=signed_out")
    front.screenshot(path=OUT / "login.png")

    alice_context = contexts()
    alice_chat = sign_in(alice_context, base, "alice", f"/chat/?with={bob.id}")
    bob_chat = sign_in(contexts(), base, "bob", f"/chat/?with={alice.id}")
    alice_chat.fill("#text", "Great, thanks. The spec is in the project notes.")
    alice_chat.press("#text", "Enter")
    expect(alice_chat.locator(".msg.mine .tick").last).to_have_text("✓✓ read")
    bob_chat.fill("#text", "Got it")
    expect(alice_chat.locator("#typing")).to_contain_text("is typing")
    alice_chat.fill("#people", "car")
    expect(alice_chat.locator("#people-results button")).to_have_text(["carol"])
    alice_chat.screenshot(path=OUT / "chat-alice.png")
    bob_chat.screenshot(path=OUT / "chat-bob.png")

    board = alice_context.new_page()
    board.goto(f"{base}/tasks/")
    wait_ready(board)
    bob_board = bob_chat.context.new_page()
    bob_board.goto(f"{base}/tasks/")
    wait_ready(bob_board)
    bob_board.click(f"[data-task-id='{api.id}'] button[data-to='in_progress']")
    expect(board.locator(f"[data-status='in_progress'] [data-task-id='{api.id}']")).to_have_count(1)
    off_the_browser_thread(
        lambda: task_set_status(task_id=design.id, status="cancelled", actor=alice)
    )
    expect(board.locator(".toast").first).to_be_visible()
    board.screenshot(path=OUT / "board.png")

    inbox = alice_context.new_page()
    inbox.goto(f"{base}/notifications/")
    wait_ready(inbox)
    expect(inbox.locator("#list li")).to_have_count(1)
    inbox.screenshot(path=OUT / "notifications.png")

    first.kill()
    expect(alice_chat.locator("#conn-state")).to_contain_text("Reconnecting")
    expect(alice_chat.locator("#conn-state")).to_contain_text("Retrying in")
    alice_chat.fill("#text", "Written while the server is away")
    alice_chat.press("#text", "Enter")
    alice_chat.screenshot(path=OUT / "chat-reconnecting.png")
