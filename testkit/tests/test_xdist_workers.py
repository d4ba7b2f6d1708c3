"""`make test`'s pytest-xdist workers: each one a Redis prefix of its own (settings_test)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _prefix(**env: str) -> str:
    """QW_CHANNEL_PREFIX as quantumworks.settings_test leaves it in a fresh process."""
    environ = {
        k: v for k, v in os.environ.items() if k not in ("QW_CHANNEL_PREFIX", "PYTEST_XDIST_WORKER")
    }
    code = "import quantumworks.settings_test as s; print(s.QW_CHANNEL_PREFIX)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_each_worker_appends_its_id_to_an_exported_prefix_once():
    assert _prefix(QW_CHANNEL_PREFIX="ci", PYTEST_XDIST_WORKER="gw1") == "cigw1"
    # A child of the worker inherits the worker's prefix and its id: it keeps the prefix.
    assert _prefix(QW_CHANNEL_PREFIX="cigw1", PYTEST_XDIST_WORKER="gw1") == "cigw1"
    assert _prefix(QW_CHANNEL_PREFIX="ci") == "ci"


def test_without_an_exported_prefix_each_process_has_its_own():
    first, second = _prefix(PYTEST_XDIST_WORKER="gw0"), _prefix(PYTEST_XDIST_WORKER="gw0")
    assert first.startswith("qwtest") and first.endswith("gw0")
    assert first != second
