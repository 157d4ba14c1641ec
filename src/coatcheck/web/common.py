"""Framework-free helpers every web integration shares.

The options (:class:`WebOptions` for the app, :class:`RouteOptions` per route), the client
address through trusted proxies only, the HTTP answer to coatcheck errors and the header
policy for responses that used a session. Nothing here imports a web framework.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .. import events
from ..config import LockMode
from ..cookies import session_cookie_values
from ..engine import Client
from ..errors import CoatcheckError, ConfigError, Conflict, RetryLater, StoreUnavailable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded")
# One ``for=`` parameter of a Forwarded element: a token or a quoted string (RFC 7239 4).
_UNSAFE_HEADER = re.compile(r"[\r\n\x00]")
_FOR = re.compile(r'(?:^|[;,\s])for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)


ErrorReply = tuple[int, list[tuple[str, str]], bytes]
Migrate = Callable[[str], "Mapping[str, Any] | Awaitable[Mapping[str, Any] | None] | None"]
NO_STORE = "private, no-store"


def error_response(exc: CoatcheckError) -> ErrorReply:
    """Status, headers and body for a coatcheck error that ends a request.

    :class:`~coatcheck.errors.RetryLater` (store down, lock busy): 503 with Retry-After.
    :class:`~coatcheck.errors.Conflict` (lease lost, concurrent change, logout elsewhere):
    409. Other errors are bugs in the app and are not answered here: they propagate.
    """
    text = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
    if isinstance(exc, RetryLater):
        retry = ("Retry-After", str(exc.retry_after))
        if isinstance(exc, StoreUnavailable):
            return 503, [*text, retry], b"session store unavailable\n"
        return 503, [*text, retry], b"session busy with another request\n"
    if isinstance(exc, Conflict):
        return 409, text, b"session changed by another request; try again\n"
    return 500, text, b"session error\n"


ANSWERED = (RetryLater, Conflict)
"""The errors every adapter answers with a status (:attr:`WebOptions.on_error`); the rest
(a value JSON cannot hold, a session too large, a write to a read-only session) are bugs
in the app and propagate to the framework like any other exception."""


@dataclass(frozen=True, slots=True)
class WebOptions:
    """Web-layer options, the same in every adapter (ASGI, WSGI, Flask, Django).

    ``trusted_proxies``: CIDRs whose forwarding header is believed. ``proxy_header``: the
    header those proxies set, ``"X-Forwarded-For"`` or ``"Forwarded"`` (RFC 7239). Only that
    one is read: a proxy that sets one header passes the other through from the client, so
    falling back to it would let a client choose its own address.

    ``save_on_error``: also save the session of a response with a 5xx status. By default a
    request that raised or answered 5xx is aborted: the store keeps what it had before.

    ``cache_control``: the Cache-Control of responses that used the session when the app
    set none (None: leave it alone); an app's own value is kept. ``Vary: Cookie`` is always
    added.

    ``on_error``: maps a :class:`~coatcheck.errors.RetryLater` or
    :class:`~coatcheck.errors.Conflict` to (status, headers, body); the default answers
    503 + Retry-After and 409.

    ``autoload``: load a cookie's session before the app runs, for every path (True) or
    paths matching the given prefixes or regular expressions (``re.Pattern``). Needed under
    ASGI for ``request.session`` to work without ``await load_session(request)``.

    ``migrate``: called with the raw cookie value when the cookie names no coatcheck
    session (may be async under ASGI); it may return the data of the session in the store
    you are leaving, which is copied into a fresh coatcheck session under a new id. Only a
    writable load migrates.
    """

    trusted_proxies: tuple[str, ...] = ()
    proxy_header: str = "X-Forwarded-For"
    save_on_error: bool = False
    cache_control: str | None = NO_STORE
    on_error: Callable[[CoatcheckError], ErrorReply] = error_response
    autoload: bool | Sequence[str | re.Pattern[str]] = False
    migrate: Migrate | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "trusted_proxies", tuple(self.trusted_proxies))
        self.networks()  # a bad CIDR fails at start-up, not on the first request
        header = {h.lower(): h for h in _PROXY_HEADERS}.get(str(self.proxy_header).lower())
        if header is None:
            raise ConfigError("proxy_header must be 'X-Forwarded-For' or 'Forwarded'")
        object.__setattr__(self, "proxy_header", header)
        if isinstance(self.autoload, str | re.Pattern):
            raise ConfigError(
                f"autoload takes True or a list of path prefixes and patterns, not one: "
                f"write autoload=[{self.autoload!r}]"
            )
        if not isinstance(self.autoload, bool):
            object.__setattr__(self, "autoload", tuple(self.autoload))
        if self.cache_control is not None and _UNSAFE_HEADER.search(self.cache_control):
            raise ConfigError("cache_control must not contain CR, LF or NUL")

    def autoloads(self, path: str) -> bool:
        """Whether a request for ``path`` has its session loaded before the app runs."""
        if isinstance(self.autoload, bool):
            return self.autoload
        for rule in self.autoload:
            if isinstance(rule, str) and path.startswith(rule):
                return True
            if isinstance(rule, re.Pattern) and rule.match(path):
                return True
        return False

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


def request_cookie(header: str | None, name: str, client: Client) -> str | None:
    """The session cookie in a request's Cookie header, read by every adapter.

    A request that carries the name with different values (cookie tossing from a sibling
    subdomain, or a cookie set for a deeper path) uses none of them: it gets a fresh session,
    and a ``duplicate_cookie`` security event (a warning, with no id) is emitted. The
    victim's own cookie works again once the tossed one is gone. Identical duplicates count
    as one. See :func:`coatcheck.cookies.session_cookie`.
    """
    values = session_cookie_values(header, name)
    if len(values) > 1:
        events.emit("duplicate_cookie", None, client.ip, values=len(values))
        return None
    return values[0] if values else None


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


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How one route uses the session; set before the session is first used.

    ``read_only``: read without a lock and never write (PHP's ``read_and_close``).
    ``lock_mode``: overrides ``Config.lock_mode`` for this route (e.g. ``"optimistic"``).
    ``skip``: no session at all; using it raises :class:`~coatcheck.SessionNotLoaded`.
    """

    read_only: bool = False
    lock_mode: LockMode | None = None
    skip: bool = False


ROUTE_OPTIONS = "_coatcheck_route_options"
"""The attribute :func:`mark_route` sets on a view function."""


def mark_route(view: Any, options: RouteOptions) -> Any:
    """Attach ``options`` to a view function (the adapters' ``session_options`` decorators)."""
    setattr(view, ROUTE_OPTIONS, options)
    return view


def route_options(view: Any) -> RouteOptions | None:
    """The options :func:`mark_route` attached to ``view``, if any."""
    options = getattr(view, ROUTE_OPTIONS, None)
    return options if isinstance(options, RouteOptions) else None


def merge_headers(
    headers: Sequence[tuple[str, str]], ours: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The one header policy: the app's headers plus the session's.

    Set-Cookie is added; Vary gains its token unless the app's Vary has it (or is ``*``);
    any other header of ours (Cache-Control) is added only when the app set none.
    """
    out = list(headers)
    present = {name.lower() for name, _ in out}
    for name, value in ours:
        lower = name.lower()
        if lower == "vary":
            out = _add_vary(out, name, value)
        elif lower == "set-cookie" or lower not in present:
            out.append((name, value))
    return out


def _add_vary(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    for i, (n, v) in enumerate(headers):
        if n.lower() == "vary":
            tokens = {t.strip().lower() for t in v.split(",")}
            if "*" not in tokens and value.lower() not in tokens:
                headers[i] = (n, f"{v}, {value}")
            return headers
    return [*headers, (name, value)]


def require(module: str, extra: str) -> ModuleType:
    """Import a framework an adapter needs, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"this coatcheck integration needs {module!r}, which is not installed: "
            f"pip install 'coatcheck[{extra}]'"
        ) from e


async def awaited(value: Any) -> Any:
    """``migrate``'s result, awaited when it is awaitable (ASGI accepts async hooks)."""
    if hasattr(value, "__await__"):
        return await value
    return value


def not_awaitable(value: Any) -> Any:
    """The sync adapters' twin of :func:`awaited`: an async hook there is a set-up error."""
    if hasattr(value, "__await__"):
        close = getattr(value, "close", None)
        if close is not None:
            close()  # no "never awaited" warning on top of the error
        raise ConfigError("migrate must be a plain function here; async hooks need ASGI")
    return value


def _trusted(address: str | None, networks: list[Network]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)
