"""Incident ids: one short id ties a server fault's logged traceback to what the client saw.

The client's `server_error` frame (or a REST 500 body) carries `incident_id`;
the traceback line in the log names the same id, so a user's report finds the
traceback without the client ever seeing exception text.
"""

from __future__ import annotations

import secrets


def new_incident_id() -> str:
    return secrets.token_hex(6)
