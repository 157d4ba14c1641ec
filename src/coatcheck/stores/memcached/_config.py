"""The memcached store's URL: ``memcached://host:port[,host:port...]?options``."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError
from .. import _url

DEFAULT_PORT = 11211
_MAX_PREFIX = 1024


@dataclass(frozen=True)
class Settings:
    """What a memcached store needs from its URL."""

    servers: tuple[tuple[str, int], ...]
    prefix: str
    timeout: float
    """Seconds to wait for each reply (pymemcache's ``timeout``)."""
    connect_timeout: float
    pool_size: int
    """Connections per server per store object."""
    where: str
    """"memcached store at host:port,...": how messages name the store."""


def parse(url: str) -> Settings:
    """Parse a ``memcached://`` URL; ConfigError on anything unknown or malformed."""
    u = _url.parse(url, default_port=DEFAULT_PORT, several_hosts=True)
    if u.scheme != "memcached":
        raise ConfigError("a memcached store URL starts with memcached://")
    if u.username is not None or u.password is not None:
        raise ConfigError("memcached URLs take no user or password (the text protocol has none)")
    if u.path not in ("", "/"):
        raise ConfigError("a memcached URL has no path: memcached://host:port[,host:port]")
    servers = u.hosts or (("127.0.0.1", DEFAULT_PORT),)
    o = u.options
    prefix = o.text("prefix", "coatcheck:")
    if len(prefix) > _MAX_PREFIX:
        raise ConfigError(f"memcached prefix is longer than {_MAX_PREFIX} characters")
    settings = Settings(
        servers=servers,
        prefix=prefix,
        timeout=o.number("timeout", "1"),
        connect_timeout=o.number("connect_timeout", "1"),
        pool_size=o.whole("pool_size", "10"),
        where="memcached store at " + ",".join(_address(h, p) for h, p in servers),
    )
    o.done()
    return settings


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
