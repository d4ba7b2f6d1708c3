"""Test settings: the production settings read with the test environment's defaults.

The suite runs against real PostgreSQL and Redis; `make test` exports the
same values, this makes a bare `pytest` behave the same way.
"""

import os
import tempfile

# The role scripts/ensure_services.sh creates (`make test` runs it first).
os.environ.setdefault("DATABASE_URL", "postgres://qw:qw-test-only@127.0.0.1:5432/qw")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-use-0123456789")
# The pool keeps connections across tests; the test database must be droppable.
os.environ.setdefault("QW_DB_POOL", "0")
# A prefix of its own per run: parallel runs and leftovers never meet.
os.environ.setdefault("QW_CHANNEL_PREFIX", f"qwtest{os.getpid()}")
# Under pytest-xdist (`make test`), each worker is a run of its own: an exported
# prefix gets the worker's id, as the test database gets its `_gw0` suffix.
# (A child process of the worker inherits both and keeps the worker's prefix.)
worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if not os.environ["QW_CHANNEL_PREFIX"].endswith(worker):
    os.environ["QW_CHANNEL_PREFIX"] += worker
# Uploaded files of this run (and of the server processes it starts) in a
# directory of its own, never in the work tree.
os.environ.setdefault("QW_DATA_DIR", tempfile.mkdtemp(prefix="qwtest-data-"))

from quantumworks.settings import *

# Hashing real passwords (~0.5 s each on this machine) would dominate the suite.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
