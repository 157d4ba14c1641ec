"""Redis store URLs: what a store needs from its URL, read once at start-up.

Four forms (the scheme picks the topology)::

    redis://[user:password@]host:6379/0?prefix=coatcheck:
    rediss://...                                   (TLS, otherwise the same)
    redis+sentinel://[user:password@]host:26379[,host:port...]/service_name[/db]
    redis+cluster://[user:password@]host:7000[,host:port...]

Hosts, credentials and options are read by :mod:`coatcheck.stores._url`, as for every store;
what is Redis's own is here: the topology, the path (database, Sentinel service), the key
prefix and TLS. The user and password are those of the data nodes; they never show in a repr.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from ...errors import ConfigError
from .. import _url

Topology = Literal["standalone", "sentinel", "cluster"]

_TOPOLOGY: dict[str, Topology] = {
    "redis": "standalone",
    "rediss": "standalone",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
}
_DEFAULT_PORT = {"standalone": 6379, "sentinel": 26379, "cluster": 6379}
_CERT_REQS = ("required", "optional", "none")
_SHORTEST_REDACTED_USER = 4  # a shorter user name would scrub ordinary words from messages


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
    where: str
    """Where the store is, for messages: topology and addresses, never credentials."""
    tls: dict[str, Any] | None = field(default=None, repr=False)
    notify: bool = True
    """Lock hand-over by notification (``notify=false``: waiters poll with backoff)."""

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """What error messages must never show."""
        user = self.username
        if user is not None and len(user) < _SHORTEST_REDACTED_USER:
            user = None
        return (self.password, user)

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
    scheme = urlsplit(url).scheme.lower()
    topology = _TOPOLOGY.get(scheme)
    if topology is None:
        raise ConfigError(f"not a redis store URL scheme: {scheme!r}")
    port = _DEFAULT_PORT[topology]
    u = _url.parse(url, default_port=port, several_hosts=topology != "standalone")
    if not u.hosts:
        u = dataclasses.replace(u, hosts=(("127.0.0.1", port),))
    service, db = _path(topology, u.path)
    opts = u.options
    prefix = opts.text("prefix", "coatcheck:")
    if "{" in prefix or "}" in prefix:
        raise ConfigError("redis store option prefix may not contain { or } (hash tags)")
    settings = Settings(
        topology=topology,
        hosts=u.hosts,
        db=db,
        service=service,
        username=u.username,
        password=u.password,
        prefix=prefix,
        socket_timeout=opts.number("socket_timeout", "2"),
        connect_timeout=opts.number("connect_timeout", "1"),
        max_connections=opts.whole("max_connections", "50"),
        retries=opts.whole("retries", "2", zero=True),
        where=_where(topology, u.where, service, db),
        tls=_tls(opts, scheme == "rediss"),
        notify=opts.flag("notify", "true"),
    )
    opts.done()
    return settings


def _where(topology: Topology, addresses: str, service: str | None, db: int) -> str:
    if topology == "sentinel":
        return f"redis store (sentinel {addresses}, service {service})"
    if topology == "cluster":
        return f"redis store (cluster {addresses})"
    return f"redis store at {addresses}/{db}"


def _path(topology: Topology, path: str) -> tuple[str | None, int]:
    """The Sentinel service name and the database number."""
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


def _tls(opts: _url.Options, rediss: bool) -> dict[str, Any] | None:
    """redis-py ``ssl_*`` arguments when TLS is on (``rediss://`` or ``ssl=true``)."""
    wanted = opts.flag("ssl", "false")
    ca = opts.optional("ssl_ca_certs")
    cert = opts.optional("ssl_certfile")
    key = opts.optional("ssl_keyfile")
    reqs = opts.choice("ssl_cert_reqs", "required", _CERT_REQS)
    check = opts.flag("ssl_check_hostname", "true")
    if not (rediss or wanted):
        return None
    return {
        "ssl_ca_certs": ca,
        "ssl_certfile": cert,
        "ssl_keyfile": key,
        "ssl_cert_reqs": reqs,
        "ssl_check_hostname": check and reqs != "none",
    }
