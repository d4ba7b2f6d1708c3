"""docs/screenshots/react-example.png: the example as alice, bob answering, in headless Chromium.

Needs `make run` and `npm run dev` (this folder) running:
    .venv/bin/python clients/react/example/screenshot.py [--url http://127.0.0.1:5173]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

OUT = Path(__file__).resolve().parents[3] / "docs" / "screenshots" / "react-example.png"

# REST as a demo user, from the page (same origin, through the dev proxy).
CALL = """async ([username, method, path, body]) => {
    const json = {"Content-Type": "application/json"};
    const tokens = await (await fetch("/api/auth/token/", {method: "POST", headers: json,
        body: JSON.stringify({username, password: `${username}-demo-2026`})})).json();
    const response = await fetch(path, {method, body: body && JSON.stringify(body),
        headers: {...json, Authorization: `Bearer ${tokens.access}`}});
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
}"""


def call(page: Page, username: str, method: str, path: str, body: dict | None = None) -> Any:
    return page.evaluate(CALL, [username, method, path, body])


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-demo-2026")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".pill")).to_have_text("Connected", timeout=15000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:5173")
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        alice = browser.new_page(viewport={"width": 1100, "height": 640})
        bob = browser.new_page(viewport={"width": 1100, "height": 640})
        bob.goto(args.url)
        alice_id = call(bob, "alice", "GET", "/api/me/")["id"]
        first = {"receiver_id": alice_id, "content": "Hi Alice, the landing page draft is up."}
        call(bob, "bob", "POST", "/api/chat/messages/", first)

        sign_in(alice, args.url, "alice")
        alice.get_by_role("button", name="bob", exact=True).click()
        expect(alice.locator(".chat li.theirs").last).to_contain_text("draft is up")
        alice.get_by_label("Message").fill("Great, I'll review it this afternoon.")
        alice.get_by_role("button", name="Send").click()

        # bob opens the conversation and reads it: alice's message turns ✓✓ read.
        sign_in(bob, args.url, "bob")
        bob.get_by_role("button", name="alice", exact=True).click()
        expect(alice.locator(".chat li.mine .tick").last).to_have_text("✓✓ read", timeout=15000)
        bob.get_by_label("Message").fill("Thanks! Moving the task to review.")
        bob.get_by_role("button", name="Send").click()
        expect(alice.locator(".chat li.theirs").last).to_contain_text("Moving the task")

        tasks = call(alice, "alice", "GET", "/api/tasks/")
        task_id = (tasks if isinstance(tasks, list) else tasks["results"])[0]["id"]
        call(bob, "bob", "PATCH", f"/api/tasks/{task_id}/status/", {"status": "in_progress"})
        expect(alice.locator(".task .status").first).to_have_text("in progress", timeout=15000)
        expect(alice.locator(".bell .badge")).not_to_have_text("0")
        OUT.parent.mkdir(parents=True, exist_ok=True)
        alice.screenshot(path=str(OUT))
        print(f"wrote {OUT}")
        browser.close()


if __name__ == "__main__":
    main()
