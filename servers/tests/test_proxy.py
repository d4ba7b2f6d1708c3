"""Which client address daphne believes behind a proxy: uvicorn's rule (servers/proxy_daphne.py)."""

from servers.proxy_daphne import forwarded_client

LOOPBACK = ["127.0.0.1", "::1"]


def test_a_trusted_proxy_gives_the_address_it_saw():
    assert forwarded_client("127.0.0.1", "198.51.100.7", "https", trusted=LOOPBACK) == (
        "198.51.100.7",
        "https",
    )


def test_a_forged_left_most_entry_is_not_believed():
    # The client wrote "10.9.9.9" itself; nginx appended the address it really came from.
    assert forwarded_client("127.0.0.1", "10.9.9.9, 198.51.100.7", None, trusted=LOOPBACK) == (
        "198.51.100.7",
        None,
    )


def test_chained_trusted_proxies_are_skipped():
    trusted = ["127.0.0.1", "10.0.0.0/8"]
    assert forwarded_client("127.0.0.1", "198.51.100.7, 10.1.2.3", None, trusted=trusted)[0] == (
        "198.51.100.7"
    )


def test_headers_from_an_untrusted_peer_are_ignored():
    assert forwarded_client("198.51.100.20", "1.2.3.4", "https", trusted=LOOPBACK) == (
        "198.51.100.20",
        None,
    )
    assert forwarded_client("127.0.0.1", "1.2.3.4", "https", trusted=[]) == ("127.0.0.1", None)


def test_a_bad_scheme_is_dropped():
    assert forwarded_client("::1", "198.51.100.7", "javascript", trusted=LOOPBACK) == (
        "198.51.100.7",
        None,
    )
