"""Memcached store (PHP's ``memcached`` save handler): sockets sync, asyncio streams async.

URL: ``memcached://host:port[,host:port...]?prefix=coatcheck:&timeout=1&connect_timeout=1
&pool_size=10``; see docs/stores/memcached.md. The driver is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._async import AsyncMemcachedStore
    from ._sync import MemcachedStore

SCHEMES: tuple[str, ...] = ("memcached",)
EXTRA = "memcached"

__all__ = ["EXTRA", "SCHEMES", "AsyncMemcachedStore", "MemcachedStore", "open_async", "open_sync"]


def open_sync(url: str) -> MemcachedStore:
    from ._config import parse
    from ._sync import MemcachedStore

    return MemcachedStore(parse(url))


def open_async(url: str) -> AsyncMemcachedStore:
    from ._async import AsyncMemcachedStore
    from ._config import parse

    return AsyncMemcachedStore(parse(url))


def __getattr__(name: str) -> Any:
    if name == "MemcachedStore":
        from ._sync import MemcachedStore

        return MemcachedStore
    if name == "AsyncMemcachedStore":
        from ._async import AsyncMemcachedStore

        return AsyncMemcachedStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
