"""A real Chromium (Debian's /usr/bin/chromium) driving the demo pages of a real server process."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from conftest import PASSWORD
from testkit.servers import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Browser:
    # The sync API runs Playwright's event loop in this thread (in a greenlet), so
    # Django sees a "running loop" and refuses the tests' plain ORM calls. They
    # are synchronous calls on this thread, which is what the check protects.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(transactional_db):
    """`server()`, `server(port)` or `server(SETTING="value", …)`: a process of this test's
    own, which it may kill, stop or restart.

    Not shared between tests: the flush after a test TRUNCATEs every table, and a
    process that outlived the test could still be in a transaction (a read receipt
    the closed page sent last) that deadlocks with it (seen in a clean-clone run).
    Each process is stopped before the flush. `own=True` is accepted for the tests
    that say they kill or restart theirs.
    """
    started: list[ServerProcess] = []

    def start(port: int | None = None, *, own: bool = False, **env: str) -> ServerProcess:
        process = ServerProcess(port, **env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def make_user(make_user):
    """Users whose password the server process can check.

    The suite hashes with MD5 for speed, a hasher the server process (production
    settings) does not know; PBKDF2 with few iterations it verifies (and upgrades).
    """

    def make(username: str):
        user = make_user(username)
        user.password = PBKDF2PasswordHasher().encode(PASSWORD, "browsersalt", iterations=1000)
        user.save(update_fields=["password"])
        return user

    return make


@pytest.fixture
def contexts(browser):
    opened: list[BrowserContext] = []

    def new_context() -> BrowserContext:
        context = browser.new_context(viewport={"width": 1200, "height": 720})
        context.set_default_timeout(TIMEOUT_MS)
        opened.append(context)
        return context

    yield new_context
    for context in opened:
        context.close()


def sign_in(context: BrowserContext, base_url: str, username: str, next_path: str) -> Page:
    """Sign in through the login page and land on `next_path` with the socket open."""
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    page.on("console", lambda message: print(f"[{username} console] {message.text}"))
    page.on("pageerror", lambda error: print(f"[{username} pageerror] {error}"))
    page.goto(f"{base_url}/login/?next={next_path}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    wait_ready(page)
    return page


def wait_ready(page: Page) -> None:
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_selector("#conn-state[data-state='open']")
