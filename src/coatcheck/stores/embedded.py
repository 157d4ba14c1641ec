"""URL parsing for the stores that need no server: memory://, file://, sqlite://."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from . import url_options
from .base import AsyncStore, Store
from .files import FileStore
from .memory import MemoryStore
from .sqlite import SQLiteStore
from .threaded import ThreadedAsyncStore


def open_sync(url: str) -> Store:
    parts = urlsplit(url)
    options = url_options(parts.query)
    path = unquote(parts.netloc + parts.path)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        _no_options(scheme, options)
        return MemoryStore()
    if scheme == "file":
        mode = options.pop("mode", "600")
        _no_options(scheme, options)
        try:
            return FileStore(path, mode=int(mode, 8))
        except ValueError as e:
            raise ConfigError("file store option mode must be octal, e.g. mode=600") from e
    table = options.pop("table", "coatcheck_sessions")
    timeout = options.pop("timeout", "5")
    _no_options(scheme, options)
    try:
        return SQLiteStore(path, table=table, timeout=float(timeout))
    except ValueError as e:
        raise ConfigError("sqlite store option timeout must be a number of seconds") from e


def open_async(url: str) -> AsyncStore:
    store = open_sync(url)
    return ThreadedAsyncStore(store, in_thread=not isinstance(store, MemoryStore))


def _no_options(scheme: str, options: dict[str, str]) -> None:
    if options:
        raise ConfigError(f"unknown {scheme} store option(s): {', '.join(sorted(options))}")
