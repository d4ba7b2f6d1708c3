"""The embedded defaults of `make run`: SQLite and the in-memory layer, one process.

The one place the suite does not use PostgreSQL and Redis: this is about them.
"""

import asyncio
import json
import os
import subprocess
import sys
import urllib.request

import pytest
from websockets.asyncio.client import connect

from testkit.servers import ROOT, ServerProcess

pytestmark = pytest.mark.slow


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def demo_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        DJANGO_SETTINGS_MODULE="quantumworks.settings",
    )
    env.pop("REDIS_URL", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run(
        [*manage, "seed_demo"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    assert "alice" in seeded.stdout
    server = ServerProcess(
        services=False,
        DEBUG="1",
        DATABASE_URL=env["DATABASE_URL"],
        QW_DATA_DIR=str(tmp_path),  # the generated VAPID key goes here
        QW_EMAIL_DELAY_SECONDS="1",
    ).start()
    yield server.http_url, seeded.stdout, server
    server.stop()


def demo_passwords(seeded: str) -> dict[str, str]:
    return {
        line.split("/")[0].strip(): line.split("/")[1].strip()
        for line in seeded.splitlines()
        if line.startswith("  ")
    }


async def test_demo_chat_round_trip_on_sqlite_and_in_memory_layer(demo_server):
    base, seeded, _ = demo_server
    passwords = demo_passwords(seeded)
    alice = await asyncio.to_thread(
        post_json, f"{base}/api/auth/token/", {"username": "alice", "password": passwords["alice"]}
    )
    bob = await asyncio.to_thread(
        post_json, f"{base}/api/auth/token/", {"username": "bob", "password": passwords["bob"]}
    )
    ws_base = base.replace("http", "ws") + "/ws/"
    async with (
        connect(f"{ws_base}?token={alice['access']}") as alice_ws,
        connect(f"{ws_base}?token={bob['access']}") as bob_ws,
    ):
        alice_hello = json.loads(await alice_ws.recv())
        bob_hello = json.loads(await bob_ws.recv())
        await alice_ws.send(
            json.dumps(
                {
                    "type": "chat_message",
                    "receiver_id": bob_hello["user_id"],
                    "content": "hi from the demo",
                    "client_msg_id": "demo-1",
                }
            )
        )
        async with asyncio.timeout(5):
            while (frame := json.loads(await bob_ws.recv()))["type"] != "chat_message":
                pass
        assert frame["content"] == "hi from the demo"
        assert frame["sender_id"] == alice_hello["user_id"]
        assert frame["seq"] == bob_hello["last_seq"] + 1
    # and a resume replays it from the SQLite inbox
    async with connect(f"{ws_base}?token={bob['access']}&last_seq={bob_hello['last_seq']}") as ws:
        frames = [json.loads(await ws.recv()) for _ in range(3)]
        types = [f["type"] for f in frames]
        assert types[0] == "authenticated"
        assert "chat_message" in types and "resumed" in types


def test_make_run_emails_someone_away_on_the_console_and_publishes_a_vapid_key(
    demo_server, tmp_path
):
    """SPEC §10 on the embedded defaults: the worker runs inside the server process,
    email goes to the console, and a VAPID key is generated into the data dir."""
    base, seeded, server = demo_server
    passwords = demo_passwords(seeded)
    alice = post_json(
        f"{base}/api/auth/token/", {"username": "alice", "password": passwords["alice"]}
    )
    bob = post_json(f"{base}/api/auth/token/", {"username": "bob", "password": passwords["bob"]})
    request = urllib.request.Request(f"{base}/api/me/")
    request.add_header("Authorization", f"Bearer {alice['access']}")
    with urllib.request.urlopen(request, timeout=5) as response:
        alice_id = json.load(response)["id"]
    sent = urllib.request.Request(
        f"{base}/api/chat/messages/",
        json.dumps({"receiver_id": alice_id, "content": "are you there, alice?"}).encode(),
        {"content-type": "application/json", "Authorization": f"Bearer {bob['access']}"},
    )
    with urllib.request.urlopen(sent, timeout=5) as response:
        assert response.status == 201

    output = server.wait_for_output("are you there, alice?", "List-Unsubscribe-Post", timeout=20)
    assert "To: " in output and "Subject: 1 new in bob" in output
    with urllib.request.urlopen(f"{base}/api/push/vapid-public-key/", timeout=5) as response:
        public_key = json.load(response)["public_key"]
    assert len(public_key) == 87  # base64url of a 65-byte uncompressed point
    assert (tmp_path / "vapid-private-key.txt").exists()
