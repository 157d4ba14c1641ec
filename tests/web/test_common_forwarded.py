"""The Forwarded header (RFC 7239) and the proxy_header option of coatcheck.web.common."""

from __future__ import annotations

import pytest

from coatcheck import Client, ConfigError
from coatcheck.web.common import (
    WebOptions,
    client_address,
    environ_client,
    forwarded_hops,
    scope_client,
    scope_headers,
)

PROXY = WebOptions(trusted_proxies=("10.0.0.0/8",), proxy_header="Forwarded")


def test_forwarded_hops_parse_tokens_quotes_ports_and_brackets() -> None:
    header = 'for=192.0.2.43:8080, For="[2001:db8:cafe::17]:4711";proto=https, for=unknown'
    assert forwarded_hops(header) == ["192.0.2.43", "2001:db8:cafe::17", "unknown"]
    assert forwarded_hops('by=10.0.0.1;for="_hidden";host=x') == ["_hidden"]
    assert forwarded_hops(None) == [] and forwarded_hops("garbage;;,,=") == []


def test_forwarded_read_right_to_left_from_a_trusted_peer_only() -> None:
    header = "for=6.6.6.6, for=203.0.113.7, for=10.0.0.5"
    assert client_address("10.1.1.1", None, PROXY, header) == "203.0.113.7"
    assert client_address("198.51.100.9", None, PROXY, header) == "198.51.100.9"


def test_only_the_configured_header_is_believed() -> None:
    # a proxy that sets Forwarded passes a client's X-Forwarded-For through untouched
    assert client_address("10.1.1.1", "6.6.6.6", PROXY, None) == "10.1.1.1"
    xff = WebOptions(trusted_proxies=("10.0.0.0/8",))
    assert client_address("10.1.1.1", "203.0.113.7", xff, "for=6.6.6.6") == "203.0.113.7"


def test_proxy_header_is_validated_and_normalised() -> None:
    assert WebOptions(proxy_header="forwarded").proxy_header == "Forwarded"
    with pytest.raises(ConfigError, match="proxy_header"):
        WebOptions(proxy_header="X-Real-IP")


@pytest.mark.parametrize(
    "header", ['for="', "for=[", 'for="[::1', "for=\x00", "for=" + "9" * 5000, "for=;for=,"]
)
def test_hostile_forwarded_values_never_crash(header: str) -> None:
    address = client_address("10.1.1.1", None, PROXY, header)
    assert address is None or isinstance(address, str)


def test_wsgi_and_asgi_requests_read_the_configured_header() -> None:
    """WSGI environ (also Flask's and Django's) and ASGI scope resolve the client alike."""
    xff = WebOptions(trusted_proxies=("10.0.0.0/8",))
    environ = {
        "HTTP_USER_AGENT": "UA",
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_FORWARDED": "for=203.0.113.7",
        "HTTP_X_FORWARDED_FOR": "198.51.100.1",
    }
    scope = {
        "client": ("10.0.0.1", 5000),
        "headers": [
            (b"user-agent", b"UA"),
            (b"forwarded", b"for=203.0.113.7"),
            (b"x-forwarded-for", b"198.51.100.1"),
        ],
    }
    assert environ_client(environ, PROXY) == Client("UA", "203.0.113.7")
    assert scope_client(scope, scope_headers(scope), PROXY) == Client("UA", "203.0.113.7")
    assert environ_client(environ, xff) == Client("UA", "198.51.100.1")
    assert scope_client(scope, scope_headers(scope), xff) == Client("UA", "198.51.100.1")
    spoofed = {**environ, "REMOTE_ADDR": "192.0.2.5"}  # not a trusted proxy: header ignored
    assert environ_client(spoofed, PROXY) == Client("UA", "192.0.2.5")


def test_repeated_asgi_headers_are_joined_not_overwritten() -> None:
    # a client's own X-Forwarded-For line, then the trusted proxy's: the proxy's hop counts
    scope = {
        "client": ("10.0.0.1", 5000),
        "headers": [(b"x-forwarded-for", b"198.51.100.66"), (b"x-forwarded-for", b"203.0.113.7")],
    }
    headers = scope_headers(scope)
    assert headers["x-forwarded-for"] == "198.51.100.66, 203.0.113.7"
    client = scope_client(scope, headers, WebOptions(trusted_proxies=("10.0.0.0/8",)))
    assert client.ip == "203.0.113.7"
