"""Framework-free helpers every web integration shares.

The client address through trusted proxies only, the Client used for fingerprints, the HTTP
answer to coatcheck errors, and the headers every response that used a session carries.
Nothing here imports a web framework.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..engine import Client
from ..errors import (
    CoatcheckError,
    ConfigError,
    LockLost,
    LockTimeout,
    SessionConflict,
    StoreUnavailable,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded")
# One ``for=`` parameter of a Forwarded element: a token or a quoted string (RFC 7239 4).
_FOR = re.compile(r'(?:^|[;,\s])for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class WebOptions:
    """Web-layer options.

    ``trusted_proxies``: CIDRs whose forwarding header is believed. ``proxy_header``: the
    header those proxies set, ``"X-Forwarded-For"`` or ``"Forwarded"`` (RFC 7239). Only that
    one is read: a proxy that sets one header passes the other through from the client, so
    falling back to it would let a client choose its own address.

    ``save_on_error``: also save the session of a response with a 5xx status. By default a
    request that raised or answered 5xx is aborted: the store keeps what it had before.
    """

    trusted_proxies: tuple[str, ...] = ()
    proxy_header: str = "X-Forwarded-For"
    save_on_error: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_proxies", tuple(self.trusted_proxies))
        self.networks()  # a bad CIDR fails at start-up, not on the first request
        header = {h.lower(): h for h in _PROXY_HEADERS}.get(str(self.proxy_header).lower())
        if header is None:
            raise ConfigError("proxy_header must be 'X-Forwarded-For' or 'Forwarded'")
        object.__setattr__(self, "proxy_header", header)

    def saves(self, status: int) -> bool:
        """Whether a response with ``status`` saves the session (else it is aborted)."""
        return status < 500 or self.save_on_error

    def networks(self) -> list[Network]:
        return [ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies]


def client_address(
    peer: str | None,
    forwarded_for: str | None,
    options: WebOptions,
    forwarded: str | None = None,
) -> str | None:
    """The client's IP: the peer, or the last forwarded hop not from a trusted proxy.

    The header named by ``options.proxy_header`` (``forwarded_for`` holds X-Forwarded-For,
    ``forwarded`` holds Forwarded) is read only when the peer itself is a trusted proxy,
    right to left, so a client cannot choose its own address by sending the header.
    """
    networks = options.networks()
    if not networks or not _trusted(peer, networks):
        return peer
    if options.proxy_header == "Forwarded":
        hops = forwarded_hops(forwarded)
    else:
        hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def forwarded_hops(header: str | None) -> list[str]:
    """The ``for=`` nodes of a Forwarded header, in order, as bare addresses.

    ``for="[2001:db8::1]:4711"`` gives ``2001:db8::1``, ``for=192.0.2.1:80`` gives
    ``192.0.2.1``; ``unknown`` and obfuscated names are kept as they are (never trusted).
    """
    hops = []
    for match in _FOR.finditer(header or ""):
        node = match.group(1)
        if len(node) >= 2 and node[0] == node[-1] == '"':
            node = re.sub(r"\\(.)", r"\1", node[1:-1])
        if node.startswith("["):
            node = node[1:].partition("]")[0]
        elif node.count(":") == 1:
            node = node.partition(":")[0]  # IPv4 with a port
        if node:
            hops.append(node)
    return hops


def client_from(
    user_agent: str,
    peer: str | None,
    forwarded_for: str | None,
    options: WebOptions,
    forwarded: str | None = None,
) -> Client:
    """What fingerprint binding needs to know about the request's client."""
    ip = client_address(peer, forwarded_for, options, forwarded)
    return Client(user_agent=user_agent, ip=ip)


def environ_client(environ: Mapping[str, Any], options: WebOptions) -> Client:
    """The Client of a WSGI request (also Flask's ``request.environ``, Django's ``META``)."""
    return client_from(
        environ.get("HTTP_USER_AGENT", ""),
        environ.get("REMOTE_ADDR"),
        environ.get("HTTP_X_FORWARDED_FOR"),
        options,
        environ.get("HTTP_FORWARDED"),
    )


def scope_headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """An ASGI request's headers by lower-case name; repeated ones joined as HTTP allows."""
    out: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        sep = "; " if name == "cookie" else ", "
        out[name] = f"{out[name]}{sep}{value}" if name in out else value
    return out


def scope_client(
    scope: Mapping[str, Any], headers: Mapping[str, str], options: WebOptions
) -> Client:
    """The Client of an ASGI request; ``headers`` is :func:`scope_headers` of ``scope``."""
    peer = scope.get("client")
    return client_from(
        headers.get("user-agent", ""),
        peer[0] if peer else None,
        headers.get("x-forwarded-for"),
        options,
        headers.get("forwarded"),
    )


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
