"""Redis store URLs: parsing, client construction and credential-free error messages.

Four forms (the scheme picks the topology)::

    redis://[user:password@]host:6379/0?prefix=coatcheck:
    rediss://...                                   (TLS, otherwise the same)
    redis+sentinel://[user:password@]host:26379[,host:port...]/service_name[/db]
    redis+cluster://[user:password@]host:7000[,host:port...]

The user and password in the URL are those of the data nodes; nothing here ever puts them,
or a storage key, into a message or a repr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFound
from redis.sentinel import MasterNotFoundError

from ..errors import ConfigError, StoreUnavailable
from . import url_options

Topology = Literal["standalone", "sentinel", "cluster"]

_TOPOLOGY: dict[str, Topology] = {
    "redis": "standalone",
    "rediss": "standalone",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
}
_DEFAULT_PORT = {"standalone": 6379, "sentinel": 26379, "cluster": 6379}
_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>\d+))?")
_TRUE = ("1", "true", "yes", "on")
_CERT_REQS = ("required", "optional", "none")

_DEFAULTS = {
    "prefix": "coatcheck:",
    "socket_timeout": "2",
    "connect_timeout": "1",
    "max_connections": "50",
    "retries": "2",
}


@dataclass(frozen=True)
class Settings:
    """Everything a Redis store needs from its URL."""

    topology: Topology
    hosts: tuple[tuple[str, int], ...]
    db: int
    service: str | None
    username: str | None = field(repr=False)
    password: str | None = field(repr=False)
    prefix: str
    socket_timeout: float
    connect_timeout: float
    max_connections: int
    retries: int
    tls: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """Where the store is, for messages: topology and addresses, never credentials."""
        addresses = ",".join(f"{h}:{p}" for h, p in self.hosts)
        if self.topology == "sentinel":
            return f"redis store (sentinel {addresses}, service {self.service})"
        if self.topology == "cluster":
            return f"redis store (cluster {addresses})"
        return f"redis store at {addresses}/{self.db}"

    def connection_args(self) -> dict[str, Any]:
        """Keyword arguments every redis-py client and pool here takes."""
        return {
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.connect_timeout,
            "socket_keepalive": True,
            "health_check_interval": 0,
        }


def parse(url: str) -> Settings:
    """Settings from a Redis store URL; ConfigError on anything invalid."""
    parts = urlsplit(url)
    topology = _TOPOLOGY.get(parts.scheme.lower())
    if topology is None:
        raise ConfigError(f"not a redis store URL scheme: {parts.scheme!r}")
    options = {**_DEFAULTS, **url_options(parts.query)}
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo)
    hosts = _hosts(hostlist, _DEFAULT_PORT[topology])
    service, db = _path(topology, parts.path)
    if topology == "standalone" and len(hosts) != 1:
        raise ConfigError("a redis:// URL names one host; use redis+cluster:// for several")
    prefix = options.pop("prefix")
    if "{" in prefix or "}" in prefix:
        raise ConfigError("redis store option prefix may not contain { or } (hash tags)")
    settings = Settings(
        topology=topology,
        hosts=hosts,
        db=db,
        service=service,
        username=username,
        password=password,
        prefix=prefix,
        socket_timeout=_number(options, "socket_timeout"),
        connect_timeout=_number(options, "connect_timeout"),
        max_connections=int(_number(options, "max_connections", integer=True)),
        retries=int(_number(options, "retries", integer=True, zero=True)),
        tls=_tls(options, parts.scheme.lower() == "rediss"),
    )
    if options:
        raise ConfigError(f"unknown redis store option(s): {', '.join(sorted(options))}")
    return settings


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _hosts(hostlist: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in (hostlist or "127.0.0.1").split(","):
        m = _HOST.fullmatch(item.strip())
        if m is None:
            raise ConfigError("redis store URL has an invalid host list (host:port,host:port)")
        port = int(m["port"]) if m["port"] else default_port
        if not 0 < port < 65536:
            raise ConfigError("redis store URL has an invalid port")
        hosts.append((unquote(m["v6"] or m["name"]), port))
    return tuple(hosts)


def _path(topology: Topology, path: str) -> tuple[str | None, int]:
    segments = [unquote(s) for s in path.strip("/").split("/") if s]
    if topology == "sentinel":
        if not 1 <= len(segments) <= 2:
            raise ConfigError("redis+sentinel URL needs /service_name[/db] after the hosts")
        return segments[0], _db(segments[1:])
    if topology == "cluster":
        if segments and segments != ["0"]:
            raise ConfigError("redis+cluster URLs have no database: Redis Cluster only has db 0")
        return None, 0
    if len(segments) > 1:
        raise ConfigError("redis:// URL path is the database number only, e.g. /0")
    return None, _db(segments)


def _db(segments: list[str]) -> int:
    if not segments:
        return 0
    if not segments[0].isdigit():
        raise ConfigError("redis store database must be a number, e.g. /0")
    return int(segments[0])


def _number(
    options: dict[str, str], name: str, *, integer: bool = False, zero: bool = False
) -> float:
    raw = options.pop(name)
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1
    if value < 0 or (value == 0 and not zero):
        kind = "a whole number" if integer else "a number of seconds"
        bound = "0 or more" if zero else "greater than 0"
        raise ConfigError(f"redis store option {name} must be {kind} {bound}")
    return value


def _tls(options: dict[str, str], rediss: bool) -> dict[str, Any] | None:
    """redis-py ``ssl_*`` arguments when TLS is on (``rediss://`` or ``ssl=true``)."""
    wanted = options.pop("ssl", "").lower() in _TRUE
    ca = options.pop("ssl_ca_certs", None)
    cert = options.pop("ssl_certfile", None)
    key = options.pop("ssl_keyfile", None)
    reqs = options.pop("ssl_cert_reqs", "required").lower()
    check = options.pop("ssl_check_hostname", "true").lower() in _TRUE
    if not (rediss or wanted):
        return None
    if reqs not in _CERT_REQS:
        raise ConfigError("redis store option ssl_cert_reqs must be required, optional or none")
    return {
        "ssl_ca_certs": ca,
        "ssl_certfile": cert,
        "ssl_keyfile": key,
        "ssl_cert_reqs": reqs,
        "ssl_check_hostname": check and reqs != "none",
    }


_HEX_KEY = re.compile(r"[0-9A-Fa-f]{64}")


def unavailable(error: BaseException, settings: Settings) -> StoreUnavailable:
    """StoreUnavailable for a driver or socket error: no password, user name or key."""
    if isinstance(error, (MasterNotFoundError, AsyncMasterNotFound)):  # text: a client repr
        text = f"no sentinel knows a reachable master for {settings.service!r}"
    else:
        text = str(error) or type(error).__name__
    for secret in (settings.password, settings.username):
        if secret and (secret is settings.password or len(secret) >= 4):
            text = text.replace(secret, "<redacted>")
    text = _HEX_KEY.sub("<key>", text)
    if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
        text = f"timed out ({text})"
    return StoreUnavailable(f"{settings.where}: {text}")
