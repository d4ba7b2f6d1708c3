"""Chat's conversation state on the embedded defaults (SQLite), in a `manage.py shell`.

Moved here from tests/test_embedded_defaults.py: the core's tests
name no app.
"""

import json
import os
import subprocess
import sys

import pytest

from testkit.servers import ROOT

pytestmark = pytest.mark.slow


CONVERSATION_STATE_ON_SQLITE = """
import json
from django.contrib.auth import get_user_model
from django.db import transaction
from chat.selectors import contact_ids, conversations_of_user
from chat.services import (SendRequest, message_mark_read, messages_hide, messages_send_batch,
    room_add_member, room_create, room_remove_member)
from chat.state import state_rebuild, state_rows

users = get_user_model().objects
alice, bob, carol = (users.create(username=name) for name in ("alice", "bob", "carol"))
room = room_create(creator_id=alice.id, name="r", member_ids=[bob.id])
first, in_room, spam = messages_send_batch([
    SendRequest(sender_id=alice.id, receiver_id=bob.id, content="1"),
    SendRequest(sender_id=alice.id, room_id=room.id, content="2"),
    SendRequest(sender_id=alice.id, receiver_id=bob.id, content="3"),
])
unread_before = {c.kind: c.unread_count for c in conversations_of_user(user_id=bob.id)}
message_mark_read(user_id=bob.id, message_id=first.message_id)
room_add_member(room=room, user_id=carol.id)
messages_hide(message_ids=[spam.message_id])
room_remove_member(room=room, user_id=carol.id)
maintained = state_rows()
with transaction.atomic():
    state_rebuild()
print(json.dumps({
    "rebuild_equal": state_rows() == maintained,
    "unread_before": unread_before,
    "listed": [
        [c.kind, c.unread_count, c.last_message.id == (first if c.room is None else in_room).message_id]
        for c in conversations_of_user(user_id=bob.id)
    ],
    "contacts": sorted(contact_ids(user_id=bob.id)) == [alice.id],
}))
"""


def test_conversation_state_on_sqlite(tmp_path):
    """Every state statement has a SQLite form: sends, receipts, hides, rooms, rebuild."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'state.sqlite3'}",
        DJANGO_SETTINGS_MODULE="quantumworks.settings",
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    shell = subprocess.run(
        [*manage, "shell", "-c", CONVERSATION_STATE_ON_SQLITE],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(shell.stdout.strip().splitlines()[-1])

    assert result == {
        "rebuild_equal": True,
        "unread_before": {"direct": 2, "room": 1},
        "listed": [["room", 1, True], ["direct", 0, True]],
        "contacts": True,
    }
