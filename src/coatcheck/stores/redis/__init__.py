"""The Redis store (``redis://``, ``rediss://``, ``redis+sentinel://``, ``redis+cluster://``).

PHP's phpredis session handler, done with leases and fencing: every operation is one round
trip (a Lua script, or a plain ``HMGET`` for an unlocked read), atomic on the server. Expiry
is Redis's own TTL, so ``gc()`` has nothing to delete. See docs/stores/redis.md.

redis-py is imported only when a store is opened: ``_async.py`` is the source, ``_sync.py``
its generated twin, ``_clients.py`` builds their redis-py clients (the only place the two
differ), ``_config.py`` reads URLs and ``_scripts.py`` holds the key layout and Lua scripts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._config import Settings, parse

if TYPE_CHECKING:
    from ._async import AsyncRedisStore
    from ._sync import RedisStore

SCHEMES: tuple[str, ...] = ("redis", "rediss", "redis+sentinel", "redis+cluster")
EXTRA = "redis"

__all__ = [
    "EXTRA",
    "SCHEMES",
    "AsyncRedisStore",
    "RedisStore",
    "Settings",
    "open_async",
    "open_sync",
    "parse",
]


def open_sync(url: str) -> RedisStore:
    """The sync store (``redis``) for a Redis URL; thread-safe."""
    from ._sync import RedisStore

    return RedisStore(parse(url))


def open_async(url: str) -> AsyncRedisStore:
    """The asyncio store (``redis.asyncio``) for the same URL; one per event loop."""
    from ._async import AsyncRedisStore

    return AsyncRedisStore(parse(url))


def __getattr__(name: str) -> Any:
    """The store classes, imported (with redis-py) on first access."""
    if name == "RedisStore":
        from ._sync import RedisStore

        return RedisStore
    if name == "AsyncRedisStore":
        from ._async import AsyncRedisStore

        return AsyncRedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
