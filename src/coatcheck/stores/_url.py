"""What stores share, written once: URLs (hosts, credentials, options) and safe messages.

A store URL is ``scheme://[user[:password]@]host[:port][,host[:port]...][/path][?options]``.
:func:`parse` splits it; :class:`Options` reads the query options with one wording of every
error; :func:`unavailable` is the one way a store builds a
:class:`~coatcheck.errors.StoreUnavailable`, so no message ever carries a credential.
"""

from __future__ import annotations

import math
import re
import select
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigError, StoreUnavailable

_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\],]+))(?::(?P<port>\d+))?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class StoreURL:
    """A store URL split into its parts; the password never shows in a repr."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    path: str
    options: Options
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """The addresses, for messages (never credentials)."""
        return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.hosts)


def parse(url: str, *, default_port: int = 0, several_hosts: bool = False) -> StoreURL:
    """Split ``url``; ConfigError (naming the part) on a malformed host, port or option."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    hosts: tuple[tuple[str, int], ...] = ()
    if hostlist:
        hosts = tuple(_host(item, scheme, default_port) for item in hostlist.split(","))
    if len(hosts) > 1 and not several_hosts:
        raise ConfigError(f"a {scheme}:// store URL names one host")
    return StoreURL(scheme, hosts, parts.path, Options(scheme, parts.query), username, password)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, sep, password = userinfo.partition(":")
    return unquote(user) or None, unquote(password) if sep else None


def _host(item: str, scheme: str, default_port: int) -> tuple[str, int]:
    m = _HOST.fullmatch(item.strip())
    if m is None:
        raise ConfigError(f"{scheme} store URL: each host is host[:port] or [v6addr][:port]")
    port = int(m.group("port") or default_port)
    if not 0 < port < 65536:
        raise ConfigError(f"{scheme} store URL: port out of range")
    return m.group("v6") or unquote(m.group("name")), port


class Options:
    """A store URL's query options, read one by one; :meth:`done` refuses any left over.

    Every reader takes the option's default as text, as a user would write it in the URL.
    """

    def __init__(self, store: str, query: str) -> None:
        self.store = store
        self._left: dict[str, str] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            if k in self._left:
                raise ConfigError(f"{store} store URL option {k!r} given twice")
            self._left[k] = v

    def __contains__(self, name: str) -> bool:
        return name in self._left

    def text(self, name: str, default: str) -> str:
        return self._left.pop(name, default)

    def optional(self, name: str) -> str | None:
        return self._left.pop(name, None)

    def number(
        self, name: str, default: str, *, integer: bool = False, zero: bool = False
    ) -> float:
        """A finite number > 0 (>= 0 with ``zero``); an int with ``integer``."""
        raw = self.text(name, default)
        try:
            value = float(int(raw)) if integer else float(raw)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise ConfigError(f"{self.store} store option {name} must be {kind}") from None
        if math.isnan(value) or math.isinf(value) or value < 0 or (value == 0 and not zero):
            bound = ">= 0" if zero else "> 0"
            raise ConfigError(f"{self.store} store option {name} must be {bound}")
        return value

    def whole(self, name: str, default: str, *, zero: bool = False) -> int:
        return int(self.number(name, default, integer=True, zero=zero))

    def flag(self, name: str, default: str) -> bool:
        raw = self.text(name, default).lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigError(f"{self.store} store option {name} must be true or false")

    def choice(self, name: str, default: str, choices: Iterable[str]) -> str:
        raw = self.text(name, default).lower()
        allowed = tuple(choices)
        if raw not in allowed:
            raise ConfigError(f"{self.store} store option {name} must be one of {allowed}")
        return raw

    def identifier(self, name: str, default: str, *, max_len: int = 63) -> str:
        """A plain SQL identifier (letters, digits, underscore), safe to put in a statement."""
        raw = self.text(name, default)
        if not _IDENT.fullmatch(raw) or len(raw) > max_len:
            raise ConfigError(
                f"{self.store} store option {name} must be a plain SQL identifier "
                f"of at most {max_len} characters"
            )
        return raw

    def rest(self) -> dict[str, str]:
        """Every option not read yet, taken (for a driver that takes its own options)."""
        left, self._left = self._left, {}
        return left

    def done(self) -> None:
        """ConfigError naming every option nobody read."""
        if self._left:
            names = ", ".join(sorted(self._left))
            raise ConfigError(f"unknown {self.store} store option(s): {names}")


class MissingTable(Exception):
    """A SQL store's table is not there and its URL says ``create_schema=false``."""

    def __init__(self, table: str) -> None:
        super().__init__(
            f"table {table} does not exist: create it with `coatcheck init` (or the store's"
            " create_schema()), or drop create_schema=false from the URL"
        )


def pending_input(fd: int) -> bool:
    """Whether an idle connection's socket is readable: the server hung up or sent an error.

    A zero-timeout poll costs no round trip, so SQL stores screen every pooled connection
    they take with it and check only a suspicious one with a real query.
    """
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
            return bool(poller.poll(0))
        return bool(select.select([fd], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def unavailable(
    where: str, e: BaseException, doing: str = "", secrets: Iterable[str | None] = ()
) -> StoreUnavailable:
    """The StoreUnavailable for a failed call: where, what, the error's type and first line.

    ``where`` names the store and its address (``"redis store at 127.0.0.1:6379/0"``);
    ``secrets`` (passwords) are scrubbed from the driver's text.
    """
    detail = (str(e).strip().splitlines() or [""])[0]
    what = f"{doing} failed: " if doing else ""
    message = f"{where}: {what}{type(e).__name__}"
    if detail:
        message += f": {redact(detail, secrets)}"
    return StoreUnavailable(message)
