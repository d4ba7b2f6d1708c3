"""The first requests to /api/schema/ of a fresh process, all at once (issue 9).

drf-spectacular builds the schema lazily per request; concurrent first
builds raced and some answered 500.
"""

import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from testkit.servers import ServerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_concurrent_first_schema_requests_all_get_the_same_schema():
    server = ServerProcess().start()
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(fetch, [f"{server.http_url}/api/schema/"] * 20))
    finally:
        server.stop()
    assert [status for status, _ in answers] == [200] * 20, [
        body[:200] for status, body in answers if status != 200
    ]
    assert len({body for _, body in answers}) == 1
    assert b"/api/tasks/" in answers[0][1]
