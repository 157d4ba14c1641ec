"""Framework-free helpers every web integration shares.

The client address through trusted proxies only, the Client used for fingerprints, the HTTP
answer to coatcheck errors, and the headers every response that used a session carries.
Nothing here imports a web framework.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..engine import Client
from ..errors import CoatcheckError, LockLost, LockTimeout, SessionConflict, StoreUnavailable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class WebOptions:
    """Web-layer options. ``trusted_proxies``: CIDRs whose X-Forwarded-For is believed."""

    trusted_proxies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_proxies", tuple(self.trusted_proxies))
        self.networks()  # a bad CIDR fails at start-up, not on the first request

    def networks(self) -> list[Network]:
        return [ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies]


def client_address(peer: str | None, forwarded_for: str | None, options: WebOptions) -> str | None:
    """The client's IP: the peer, or the last X-Forwarded-For hop not from a trusted proxy.

    X-Forwarded-For is read only when the peer itself is a trusted proxy, right to left,
    so a client cannot choose its own address by sending the header.
    """
    networks = options.networks()
    if not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def client_from(
    user_agent: str, peer: str | None, forwarded_for: str | None, options: WebOptions
) -> Client:
    """What fingerprint binding needs to know about the request's client."""
    return Client(user_agent=user_agent, ip=client_address(peer, forwarded_for, options))


def error_response(exc: CoatcheckError) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body for a coatcheck error that ends a request."""
    text = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
    if isinstance(exc, LockTimeout):
        return 503, [*text, ("Retry-After", "1")], b"session busy with another request\n"
    if isinstance(exc, StoreUnavailable):
        return 503, [*text, ("Retry-After", "5")], b"session store unavailable\n"
    if isinstance(exc, SessionConflict | LockLost):
        return 409, text, b"session changed by another request; try again\n"
    return 500, text, b"session error\n"


def session_headers() -> list[tuple[str, str]]:
    """Headers for every response that used a session: never cache it for others."""
    return [("Vary", "Cookie"), ("Cache-Control", "private, no-store")]


def _trusted(address: str | None, networks: list[Network]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)
