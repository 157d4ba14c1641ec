"""What the ASGI, FastAPI, Quart and Litestar tests share: a counting real store, and a
small app written once against the framework-free middleware API."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coatcheck import AsyncSessionManager, Config, ids
from coatcheck.locks import new_token
from coatcheck.stores.base import LOCKED, LockRequest, Stored
from tests.support.threaded import ThreadedAsyncStore
from tests.web.djangoapp.counting import CountingStore

UA = "pytest-asgi"


def counting_store(tmp_path: Path) -> ThreadedAsyncStore:
    """A real SQLite store, run in threads as the async SQLite store is, counting calls."""
    return ThreadedAsyncStore(CountingStore(str(tmp_path / "sessions.db")))


def calls(store: ThreadedAsyncStore) -> list[str]:
    sync = store.sync
    assert isinstance(sync, CountingStore)
    return sync.calls


def manager(store: Any, **options: Any) -> AsyncSessionManager:
    return AsyncSessionManager(store, Config(gc_probability=0, lock_wait=0.2, **options))


def cookie_of(headers: Iterable[tuple[str, str]], name: str = "session") -> str | None:
    """The session cookie value in a response's Set-Cookie headers, or None."""
    for key, value in headers:
        if key.lower() == "set-cookie" and value.startswith(name + "="):
            return value.split(";", 1)[0].split("=", 1)[1]
    return None


def set_cookies(headers: Iterable[tuple[str, str]]) -> list[str]:
    return [v for k, v in headers if k.lower() == "set-cookie"]


def stored(store: ThreadedAsyncStore, sid: str) -> Stored | None:
    """The record under ``sid`` as the store holds it (no lock taken)."""
    found = store.sync.read(ids.storage_key(sid))
    assert found is None or isinstance(found, Stored)
    return found


def hold_lock(store: ThreadedAsyncStore, sid: str) -> str:
    """Take the session's lock as another request (or server) would; returns its token."""
    token = new_token()
    assert store.sync.read(ids.storage_key(sid), LockRequest(token, 30)) is not LOCKED
    return token


def is_locked(store: ThreadedAsyncStore, sid: str) -> bool:
    probe = new_token()
    key = ids.storage_key(sid)
    result = store.sync.read(key, LockRequest(probe, 30))
    if result is LOCKED:
        return True
    store.sync.release(key, probe)
    return False
