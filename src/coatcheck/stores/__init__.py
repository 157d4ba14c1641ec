"""Stores by URL: ``open_store(url)`` for sync code, ``open_async_store(url)`` for asyncio.

Each store module exposes ``open_sync(url)`` and ``open_async(url)``; this table maps URL
schemes to modules, so a store's driver is imported only when its URL is used.
"""

from __future__ import annotations

import importlib
from typing import cast
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigError
from .base import (
    LOCKED,
    MUST_CREATE,
    MUST_EXIST,
    AsyncStore,
    LockRequest,
    Meta,
    ReadResult,
    Store,
    Stored,
)

_MODULES: dict[str, tuple[str, str]] = {
    "memory": ("coatcheck.stores.embedded", ""),
    "file": ("coatcheck.stores.embedded", ""),
    "sqlite": ("coatcheck.stores.embedded", ""),
    "redis": ("coatcheck.stores.redis", "redis"),
    "rediss": ("coatcheck.stores.redis", "redis"),
    "redis+sentinel": ("coatcheck.stores.redis", "redis"),
    "redis+cluster": ("coatcheck.stores.redis", "redis"),
    "postgresql": ("coatcheck.stores.postgresql", "postgresql"),
    "postgres": ("coatcheck.stores.postgresql", "postgresql"),
    "mysql": ("coatcheck.stores.mysql", "mysql"),
    "mariadb": ("coatcheck.stores.mysql", "mysql"),
    "memcached": ("coatcheck.stores.memcached", "memcached"),
}


def _module(url: str) -> object:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _MODULES:
        known = ", ".join(sorted(_MODULES))
        raise ConfigError(f"unknown store URL scheme {scheme!r}; known schemes: {known}")
    name, extra = _MODULES[scheme]
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ConfigError(
            f"the {scheme} store needs its driver: pip install 'coatcheck[{extra}]' ({e})"
        ) from e


def open_store(url: str) -> Store:
    """A sync store for ``url``, e.g. ``sqlite:///sessions.db`` or ``redis://localhost``."""
    return cast(Store, _module(url).open_sync(url))  # type: ignore[attr-defined]


def open_async_store(url: str) -> AsyncStore:
    """The async store for ``url``; the same URLs as :func:`open_store`."""
    return cast(AsyncStore, _module(url).open_async(url))  # type: ignore[attr-defined]


def url_options(query: str) -> dict[str, str]:
    """URL query options as a dict; a repeated option is an error."""
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    out: dict[str, str] = {}
    for k, v in pairs:
        if k in out:
            raise ConfigError(f"store URL option {k!r} given twice")
        out[k] = v
    return out


__all__ = [
    "LOCKED",
    "MUST_CREATE",
    "MUST_EXIST",
    "AsyncStore",
    "LockRequest",
    "Meta",
    "ReadResult",
    "Store",
    "Stored",
    "open_async_store",
    "open_store",
    "url_options",
]
