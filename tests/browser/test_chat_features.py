"""SPEC §11 in the demo, in real Chromium: edits and deletions in place on every tab,
files with upload progress and an image preview, a mention of me highlighted."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from playwright.sync_api import expect

from chat.models import Attachment
from chat.services import message_send, room_create
from tests.browser.conftest import sign_in
from tests.browser.test_demo_pages import off_the_browser_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def png(width: int = 120, height: int = 80) -> bytes:
    """A small real PNG (a blue-to-orange gradient) that a browser renders."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((40 + x, 90, 220 - x, 255)) for x in range(width))
        for _ in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_edit_delete_file_and_mention_as_people_use_them(make_user, server, contexts, tmp_path):
    alice, bob = make_user("alice"), make_user("bob")
    base = server().http_url
    alice_context = contexts()
    alice_page = sign_in(alice_context, base, "alice", f"/chat/?with={bob.id}")
    alice_tab = alice_context.new_page()  # a second tab: the socket is shared with the first
    alice_tab.goto(f"{base}/chat/?with={bob.id}")
    alice_tab.wait_for_selector("body[data-ready='1']")
    bob_page = sign_in(contexts(), base, "bob", f"/chat/?with={alice.id}")

    # --- edit: in place for bob and on alice's other tab
    alice_page.fill("#text", "The fee is 500")
    alice_page.press("#text", "Enter")
    for page in (alice_page, alice_tab, bob_page):
        expect(page.locator("#messages .msg .content")).to_have_text(["The fee is 500"])
    mine = alice_page.locator("#messages .msg.mine")
    mine.get_by_role("button", name="Edit this message").click()
    expect(alice_page.locator("#editing")).to_be_visible()
    expect(alice_page.locator("#text")).to_have_value("The fee is 500")
    alice_page.fill("#text", "The fee is 600")
    alice_page.press("#text", "Enter")
    for page in (alice_page, alice_tab, bob_page):
        expect(page.locator("#messages .msg .content")).to_have_text(["The fee is 600"])
        expect(page.locator("#messages .msg .edited")).to_have_count(1)
    expect(alice_page.locator("#editing")).to_be_hidden()
    bob_page.screenshot(path=str(SCREENSHOTS / "chat-edited.png"))

    # --- a file: the paper clip, a progress bar, name and size, an image preview
    picture = tmp_path / "mockup.png"
    picture.write_bytes(png())
    alice_page.set_input_files("#file", str(picture))
    expect(alice_page.locator("#uploads li")).to_contain_text("mockup.png")
    expect(alice_page.locator("#uploads progress")).to_have_attribute(
        "aria-label", "mockup.png uploaded"
    )
    alice_page.fill("#text", "Here is the mockup")
    alice_page.press("#text", "Enter")
    expect(alice_page.locator("#uploads li")).to_have_count(0)
    link = bob_page.locator("#messages .msg .files a")
    expect(link).to_have_text(f"mockup.png ({len(png())} B)")
    preview = bob_page.locator("#messages .msg .files img")
    expect(preview).to_have_attribute("alt", "Preview of mockup.png")
    bob_page.wait_for_function(
        "() => { const i = document.querySelector('#messages .files img'); return i && i.naturalWidth === 120; }"
    )
    downloaded = bob_page.request.get(base + link.get_attribute("href"))
    assert downloaded.status == 200
    assert downloaded.body() == png()
    assert downloaded.headers["content-disposition"] == 'attachment; filename="mockup.png"'
    bob_page.screenshot(path=str(SCREENSHOTS / "chat-file.png"))
    assert Attachment.objects.get().message is not None

    # --- delete: two presses, then gone from every tab
    first = alice_page.locator("#messages .msg.mine").first
    delete = first.get_by_role("button", name="Delete this message")
    delete.click()
    first.get_by_role("button", name="Confirm: delete this message for everyone").click()
    for page in (alice_page, alice_tab, bob_page):
        expect(page.locator("#messages .msg .content")).to_have_text(["Here is the mockup"])

    # --- a mention of me in a room, highlighted
    room = off_the_browser_thread(
        lambda: room_create(creator_id=bob.id, name="launch", member_ids=[alice.id])
    )
    alice_page.goto(f"{base}/chat/?room={room.id}")
    alice_page.wait_for_selector("body[data-ready='1']")
    off_the_browser_thread(
        lambda: message_send(
            sender_id=bob.id, room_id=room.id, content="@alice can you check the logo?"
        )
    )
    mention = alice_page.locator("#messages .msg.mention-me")
    expect(mention).to_have_count(1)
    expect(mention.locator("mark.mention")).to_have_text("@alice")
    expect(alice_page.locator(".toast")).to_contain_text("bob mentioned you in launch")
    alice_page.screenshot(path=str(SCREENSHOTS / "chat-mention.png"))
    assert alice_page.dialogs == [] and bob_page.dialogs == []


def test_keyboard_reaches_the_paper_clip_and_the_message_actions(make_user, server, contexts):
    alice, bob = make_user("alice"), make_user("bob")
    off_the_browser_thread(
        lambda: message_send(sender_id=alice.id, receiver_id=bob.id, content="hi")
    )
    base = server().http_url
    page = sign_in(contexts(), base, "alice", f"/chat/?with={bob.id}")
    expect(page.locator("#messages .msg.mine .actions button")).to_have_count(2)
    reached = set()
    page.locator("#people").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        label = page.evaluate("() => document.activeElement.ariaLabel || document.activeElement.id")
        reached.add(label)
    assert {"Attach files", "Edit this message", "Delete this message"} <= reached, reached


def test_reading_on_one_device_clears_the_conversation_badge_on_the_other(
    make_user, server, contexts
):
    alice, bob = make_user("alice"), make_user("bob")
    base = server().http_url
    laptop = sign_in(contexts(), base, "alice", "/chat/")
    off_the_browser_thread(
        lambda: message_send(sender_id=bob.id, receiver_id=alice.id, content="are you there?")
    )
    badge = laptop.locator(f'[data-key="user:{bob.id}"] .badge')
    expect(badge).to_have_text("1")
    expect(badge).to_be_visible()

    phone = sign_in(contexts(), base, "alice", f"/chat/?with={bob.id}")  # another browser
    expect(phone.locator("#messages .msg .content")).to_have_text(["are you there?"])

    expect(badge).to_be_hidden()
