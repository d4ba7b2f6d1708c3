"""axe-core (npm, pinned in package-lock.json) over every demo page in real Chromium.

No serious or critical violation, and no page without a top-level heading, on `/`, `/login/`, `/chat/` (with a
conversation open, a sent file and a mention), `/tasks/` and
`/notifications/`, signed in. axe runs inside the page as it is after the
page's own scripts have rendered it.
"""

from pathlib import Path

import pytest

from chat.services import message_send, room_create
from tasks.models import Project, Task
from tests.browser.conftest import sign_in
from tests.browser.test_demo_pages import off_the_browser_thread

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


def violations(page) -> list[dict]:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci` (make test does)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "nodes": [node["target"] for node in v["nodes"]],
        }
        for v in result["violations"]
        # and the one moderate rule the pages broke: a page needs a top-level heading
        if v["impact"] in SERIOUS or v["id"] == "page-has-heading-one"
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_no_serious_or_critical_violation_on_any_page(server, contexts, make_user):
    alice, bob = make_user("alice"), make_user("bob")

    def conversations():
        room = room_create(creator_id=alice.id, name="launch", member_ids=[bob.id])
        message_send(sender_id=bob.id, receiver_id=alice.id, content="hello alice")
        message_send(sender_id=alice.id, receiver_id=bob.id, content="hello bob")
        message_send(sender_id=bob.id, room_id=room.id, content="@alice please review")
        project = Project.objects.create(author=alice, title="Site")
        Task.objects.create(project=project, title="Logo", freelancer=bob)
        return room

    room = off_the_browser_thread(conversations)
    base = server().http_url
    context = contexts()

    login = context.new_page()
    login.goto(f"{base}/login/")
    found = {"/login/": violations(login)}
    page = sign_in(context, base, "alice", "/tasks/")
    for path in (
        "/",
        f"/chat/?with={bob.id}",
        f"/chat/?room={room.id}",
        "/tasks/",
        "/notifications/",
    ):
        page.goto(f"{base}{path}")
        if path != "/":  # the front page is static
            page.wait_for_selector("body[data-ready='1']")
        if path.startswith("/chat/"):
            page.wait_for_selector(".msg")
        found[path] = violations(page)

    print("axe:", found)
    assert {path: v for path, v in found.items() if v} == {}
