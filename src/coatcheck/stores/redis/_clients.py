"""redis-py, sync and async: the one place where the store's two halves differ.

:func:`sync_client` and :func:`async_client` build the same client for each topology from
``redis`` or ``redis.asyncio`` (two tables of class names, one builder). Every client gets a
bounded pool, short socket timeouts and a small retry budget with jittered exponential
backoff. The retry covers connection errors only: a command sent on a connection the server
dropped (restart, failover) is sent again on a fresh one, so the app recovers from an outage
without a restart; a timeout is not retried, since the server may have run the command.
hiredis parses replies when it is installed (redis-py's default).

Also here: the errors both drivers raise (:data:`ERRORS`), and :func:`unavailable`, which turns
one into a :class:`~coatcheck.errors.StoreUnavailable` that names no credential or key.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.exceptions
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff

from ...errors import StoreUnavailable
from .. import _url
from ._config import Settings

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 0.5

# What a store call may raise on a dead, slow or failing server, sync or async (3.11's
# asyncio.TimeoutError is TimeoutError, an OSError).
ERRORS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)

# Its text is a client's repr (connection arguments and all), so it gets a message of its own.
_MASTER_NOT_FOUND = (redis.sentinel.MasterNotFoundError, redis.asyncio.sentinel.MasterNotFoundError)


@dataclass(frozen=True)
class _Driver:
    """The redis-py classes one half uses; everything else about building a client is shared."""

    Redis: Any
    BlockingConnectionPool: Any
    SSLConnection: Any
    Retry: Any
    ClusterNode: Any
    RedisCluster: Any
    Sentinel: Any


_SYNC = _Driver(
    redis.Redis,
    redis.BlockingConnectionPool,
    redis.SSLConnection,
    redis.retry.Retry,
    redis.cluster.ClusterNode,
    redis.cluster.RedisCluster,
    redis.sentinel.Sentinel,
)
_ASYNC = _Driver(
    redis.asyncio.Redis,
    redis.asyncio.BlockingConnectionPool,
    redis.asyncio.SSLConnection,
    redis.asyncio.retry.Retry,
    redis.asyncio.cluster.ClusterNode,
    redis.asyncio.cluster.RedisCluster,
    redis.asyncio.sentinel.Sentinel,
)


def sync_client(settings: Settings) -> Any:
    """A ``redis.Redis`` (standalone, Sentinel) or ``redis.cluster.RedisCluster``.

    RedisCluster connects while it is built, so callers build it lazily, inside their
    error translation.
    """
    return _build(settings, _SYNC)


def async_client(settings: Settings) -> Any:
    """The ``redis.asyncio`` twin of :func:`sync_client`; nothing connects until first use."""
    return _build(settings, _ASYNC)


def _retry(settings: Settings, driver: _Driver) -> Any:
    backoff = ExponentialWithJitterBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE)
    return driver.Retry(backoff, settings.retries, (redis.exceptions.ConnectionError,))


def _build(settings: Settings, driver: _Driver) -> Any:
    common = {**settings.connection_args(), "retry": _retry(settings, driver)}
    tls = settings.tls
    if settings.topology == "cluster":
        nodes = [driver.ClusterNode(h, p) for h, p in settings.hosts]
        extra = {"ssl": True, **tls} if tls else {}
        return driver.RedisCluster(
            startup_nodes=nodes, max_connections=settings.max_connections, **common, **extra
        )
    if settings.topology == "sentinel":
        # Sentinels are asked with the same short timeouts and retry budget (redis-py's
        # default waits seconds per sentinel); the URL's credentials are the data nodes'.
        sentinel_args = {
            "socket_timeout": settings.socket_timeout,
            "socket_connect_timeout": settings.connect_timeout,
            "retry": _retry(settings, driver),
        }
        sentinel = driver.Sentinel(list(settings.hosts), sentinel_kwargs=sentinel_args)
        extra = {"ssl": True, **tls} if tls else {}
        return sentinel.master_for(
            settings.service,
            db=settings.db,
            max_connections=settings.max_connections,
            **common,
            **extra,
        )
    host, port = settings.hosts[0]
    kwargs: dict[str, Any] = {**common, "host": host, "port": port, "db": settings.db}
    if tls:
        kwargs.update(tls, connection_class=driver.SSLConnection)
    pool = driver.BlockingConnectionPool(
        max_connections=settings.max_connections, timeout=settings.socket_timeout, **kwargs
    )
    return driver.Redis(connection_pool=pool)


ClientLock = threading.Lock
"""Guards building the sync store's client: threads share one store."""


class AsyncClientLock:
    """Guards building the async store's client: nothing to do, since building it awaits
    nothing, so no other task runs meanwhile. :data:`ClientLock` is its sync twin."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def unavailable(
    settings: Settings, e: BaseException, doing: str, key: str | None = None
) -> StoreUnavailable:
    """StoreUnavailable for a driver or socket error: no password, user name or storage key."""
    if isinstance(e, _MASTER_NOT_FOUND):
        e = type(e)(f"no sentinel knows a reachable master for {settings.service!r}")
    return _url.unavailable(settings.where, e, doing, (*settings.secrets, key))
