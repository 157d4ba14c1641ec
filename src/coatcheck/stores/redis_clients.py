"""redis-py clients for each topology, sync and async, with pools, timeouts and retries.

Every client gets a bounded pool, short socket timeouts and a small retry budget with
jittered exponential backoff. The retry covers connection errors only: a command sent on a
connection the server dropped (restart, failover) is sent again on a fresh one, so the app
recovers from an outage without a restart; a timeout is not retried, since the server may
have run the command. hiredis parses replies when it is installed (redis-py's default).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.backoff import ExponentialWithJitterBackoff

from .redis_config import Settings

_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 0.5


def _retry(settings: Settings) -> redis.retry.Retry:
    backoff = ExponentialWithJitterBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE)
    return redis.retry.Retry(backoff, settings.retries, (redis.exceptions.ConnectionError,))


def _async_retry(settings: Settings) -> redis.asyncio.retry.Retry:
    backoff = ExponentialWithJitterBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE)
    return redis.asyncio.retry.Retry(backoff, settings.retries, (redis.exceptions.ConnectionError,))


def sync_client(settings: Settings) -> Any:
    """A ``redis.Redis`` (standalone, sentinel) or ``redis.cluster.RedisCluster``.

    RedisCluster connects while it is built, so callers build it lazily, inside their
    error translation.
    """
    common = {**settings.connection_args(), "retry": _retry(settings)}
    tls = settings.tls
    if settings.topology == "cluster":
        nodes = [
            redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
            for h, p in settings.hosts
        ]
        extra = {"ssl": True, **tls} if tls else {}
        return redis.cluster.RedisCluster(
            startup_nodes=nodes, max_connections=settings.max_connections, **common, **extra
        )
    if settings.topology == "sentinel":
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(settings.hosts), sentinel_kwargs=_sentinel_args(settings, _retry(settings))
        )
        extra = {"ssl": True, **tls} if tls else {}
        return sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.service,
            db=settings.db,
            max_connections=settings.max_connections,
            **common,
            **extra,
        )
    host, port = settings.hosts[0]
    kwargs: dict[str, Any] = {**common, "host": host, "port": port, "db": settings.db}
    if tls:
        kwargs.update(tls, connection_class=redis.SSLConnection)
    pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        max_connections=settings.max_connections, timeout=settings.socket_timeout, **kwargs
    )
    return redis.Redis(connection_pool=pool)


def async_client(settings: Settings) -> Any:
    """The ``redis.asyncio`` twin of :func:`sync_client` (nothing connects until used)."""
    common = {**settings.connection_args(), "retry": _async_retry(settings)}
    tls = settings.tls
    if settings.topology == "cluster":
        nodes = [redis.asyncio.cluster.ClusterNode(h, p) for h, p in settings.hosts]
        extra = {"ssl": True, **tls} if tls else {}
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=nodes, max_connections=settings.max_connections, **common, **extra
        )
    if settings.topology == "sentinel":
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(settings.hosts), sentinel_kwargs=_sentinel_args(settings, _async_retry(settings))
        )
        extra = {"ssl": True, **tls} if tls else {}
        return sentinel.master_for(
            settings.service or "",
            db=settings.db,
            max_connections=settings.max_connections,
            **common,
            **extra,
        )
    host, port = settings.hosts[0]
    kwargs: dict[str, Any] = {**common, "host": host, "port": port, "db": settings.db}
    if tls:
        kwargs.update(tls, connection_class=redis.asyncio.SSLConnection)
    pool = redis.asyncio.BlockingConnectionPool(
        max_connections=settings.max_connections, timeout=settings.socket_timeout, **kwargs
    )
    return redis.asyncio.Redis(connection_pool=pool)


def _sentinel_args(settings: Settings, retry: Any) -> dict[str, Any]:
    """Sentinels are asked with the same short timeouts and retry budget (redis-py's default
    budget waits seconds per sentinel); they take no credentials here."""
    return {
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.connect_timeout,
        "retry": retry,
    }
