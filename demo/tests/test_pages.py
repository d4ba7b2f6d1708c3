"""The demo pages as Django renders them."""

import pytest
from django.test import override_settings


@pytest.mark.parametrize(("debug", "listed"), [(True, True), (False, False)])
def test_demo_passwords_are_listed_only_with_debug(client, debug, listed):
    with override_settings(DEBUG=debug):
        page = client.get("/login/").content.decode()

    assert ("alice-demo-2026" in page) is listed


def test_front_page_leads_to_sign_in_and_the_three_pages(client):
    page = client.get("/").content.decode()

    for href in (
        'href="/login/?next=/chat/"',
        'href="/chat/"',
        'href="/tasks/"',
        'href="/notifications/"',
    ):
        assert href in page
