"""Stores by URL: ``open_store(url)`` for sync code, ``open_async_store(url)`` for asyncio.

A store module declares the URL schemes it serves (``SCHEMES``), the pip extra its driver
comes with (``EXTRA``), and ``open_sync(url)`` / ``open_async(url)``; it imports its driver
only when a store is opened, so listing the stores costs nothing. The built-in stores are
listed here; other packages add theirs through the ``coatcheck.stores`` entry-point group
(the entry point names the module), or at run time with :func:`register`.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from types import ModuleType
from typing import cast
from urllib.parse import urlsplit

from ..contract import LOCKED, MUST_CREATE, MUST_EXIST, LockRequest, Meta, ReadResult, Stored
from ..errors import ConfigError
from .base import AsyncStore, Store

ENTRY_POINT_GROUP = "coatcheck.stores"

BUILTIN = (
    "coatcheck.stores.memory",
    "coatcheck.stores.files",
    "coatcheck.stores.sqlite",
    "coatcheck.stores.redis",
    "coatcheck.stores.postgresql",
    "coatcheck.stores.mysql",
    "coatcheck.stores.memcached",
    "coatcheck.stores.cookie",
)

_schemes: dict[str, ModuleType] = {}
_loaded = False
_guard = threading.Lock()


def register(module: ModuleType | str) -> None:
    """Serve the schemes a store module declares (its ``SCHEMES``) from now on.

    ConfigError if the module lacks ``SCHEMES``, ``open_sync`` or ``open_async``, or claims
    a scheme another module already serves.
    """
    mod = importlib.import_module(module) if isinstance(module, str) else module
    schemes = getattr(mod, "SCHEMES", None)
    if not schemes or not callable(getattr(mod, "open_sync", None)):
        raise ConfigError(f"{mod.__name__} is not a store module (SCHEMES, open_sync, open_async)")
    if not callable(getattr(mod, "open_async", None)):
        raise ConfigError(f"{mod.__name__} is not a store module (SCHEMES, open_sync, open_async)")
    with _guard:
        for scheme in schemes:
            owner = _schemes.get(scheme.lower())
            if owner is not None and owner is not mod:
                raise ConfigError(
                    f"store URL scheme {scheme!r} is already served by {owner.__name__}"
                )
        for scheme in schemes:
            _schemes[scheme.lower()] = mod


def schemes() -> dict[str, str]:
    """Every known URL scheme and the module that serves it."""
    _load()
    return {scheme: mod.__name__ for scheme, mod in sorted(_schemes.items())}


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for name in BUILTIN:
        register(name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in BUILTIN:
            register(ep.value)
    _loaded = True


def _module(url: str) -> ModuleType:
    _load()
    scheme = urlsplit(url).scheme.lower()
    mod = _schemes.get(scheme)
    if mod is None:
        known = ", ".join(sorted(_schemes))
        raise ConfigError(f"unknown store URL scheme {scheme!r}; known schemes: {known}")
    return mod


def _opened(url: str, asynchronous: bool) -> Store | AsyncStore:
    from ..wrappers.encrypted import split_url  # late: wrappers import this package
    from ..wrappers.migrating import split_url as split_migration

    url, migration = split_migration(url)  # ?migrate_to=env:VARIABLE: read old, write both
    if migration is not None:
        old, new = _opened(url, asynchronous), _opened(migration.url, asynchronous)
        if isinstance(old, AsyncStore) and isinstance(new, AsyncStore):
            return migration.wrap_async(old, new)
        return migration.wrap_sync(cast(Store, old), cast(Store, new))
    url, encryption = split_url(url)  # ?encrypt=env:VARIABLE on any store URL
    mod = _module(url)
    opener = mod.open_async if asynchronous else mod.open_sync
    try:
        store = cast(Store | AsyncStore, opener(url))
    except ImportError as e:
        scheme = urlsplit(url).scheme.lower()
        extra = getattr(mod, "EXTRA", "")
        how = f"pip install 'coatcheck[{extra}]'" if extra else "install its driver"
        raise ConfigError(f"the {scheme} store needs its driver: {how} ({e})") from e
    if encryption is None:
        return store
    if getattr(store, "client_side", False):
        raise ConfigError(
            "encrypt= wraps a server store; a cookie:// store already seals every session "
            "with its own keys: drop encrypt= from the URL"
        )
    if isinstance(store, AsyncStore):
        return encryption.wrap_async(store)
    return encryption.wrap_sync(store)


def open_store(url: str) -> Store:
    """A sync store for ``url``, e.g. ``sqlite:///sessions.db`` or ``redis://localhost``."""
    return cast(Store, _opened(url, asynchronous=False))


def open_async_store(url: str) -> AsyncStore:
    """The async store for ``url``; the same URLs as :func:`open_store`."""
    return cast(AsyncStore, _opened(url, asynchronous=True))


__all__ = [
    "ENTRY_POINT_GROUP",
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
    "register",
    "schemes",
]
