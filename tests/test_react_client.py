"""The React bindings (clients/react) against a real server process, end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from conftest import token_for
from tasks.models import Project, Task

PACKAGE = Path(__file__).resolve().parents[1] / "clients" / "react"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@sync_to_async
def open_task(author) -> Task:
    project = Project.objects.create(author=author, title="Launch")
    return Task.objects.create(project=project, title="Landing page")


async def test_the_bindings_chat_resume_and_follow_a_task_on_a_real_server(amake_user, servers):
    assert (PACKAGE / "node_modules").is_dir(), "run `npm ci` in clients/react (make test does)"
    node = shutil.which("node")
    assert node, "node is needed (scripts/ensure_services.sh node)"
    alice, bob = await amake_user("alice"), await amake_user("bob")
    task = await open_task(alice)
    server = servers()
    result = await sync_to_async(subprocess.run)(
        [node, "--test", "--test-reporter=tap", "e2e/"],
        cwd=PACKAGE,
        env={
            **os.environ,
            "QW_E2E_HTTP": server.http_url,
            "QW_E2E_ALICE_TOKEN": token_for(alice),
            "QW_E2E_BOB_TOKEN": token_for(bob),
            "QW_E2E_ALICE_ID": str(alice.id),
            "QW_E2E_BOB_ID": str(bob.id),
            "QW_E2E_TASK_ID": str(task.id),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "# pass 1" in result.stdout and "# fail 0" in result.stdout, result.stdout[-3000:]
