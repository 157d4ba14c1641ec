"""The Forwarded header (RFC 7239) and the proxy_header option of coatcheck.web.common."""

from __future__ import annotations

import pytest

from coatcheck import ConfigError
from coatcheck.web.common import WebOptions, client_address, forwarded_hops

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
