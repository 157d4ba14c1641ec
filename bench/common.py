"""The session cycle every store benchmark times, and the pieces its baselines share.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck does it through a SessionManager (``session``) and through its store alone
(``store``: read + lock, bump, fenced write, with no engine in between); the raw baselines
in each bench module do the same round trips by hand and re-encode the same record bytes
with :func:`bump`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import orjson

from coatcheck import AsyncSessionManager, Config, SessionManager, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.base import AsyncStore, LockRequest, ReadResult, Store, Stored

# no GC draws, and a touch threshold that keeps every cycle a real write
CONFIG = Config(gc_probability=0, cookie_secure=True, touch_threshold=60)
TOKEN = "raw-token-raw-token-xx"
LEASE = 30.0
IDLE = 1440.0


def data(size: int) -> dict[str, object]:
    """Session data whose stored record is about ``size`` bytes."""
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def namespaced(url: str, option: str, prefix: str = "bench_") -> str:
    """``url`` with a key prefix / table of its own, so runs never meet (dropped after)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}{option}={prefix}{uuid.uuid4().hex[:10]}"


def seed(url: str, size: int) -> tuple[str, int]:
    """A stored session of about ``size`` bytes; returns its id and record size."""
    store = open_store(url)
    s = SessionManager(store, CONFIG).start()
    s.update(data(size))
    s.write_close()
    stored = store.read(storage_key(s.id))
    store.close()
    return s.id, len(getattr(stored, "payload", b""))


def bump(payload: bytes) -> bytes:
    """The record with its counter incremented: what the app's change costs to encode."""
    head, _, body = payload.partition(b"\n")
    decoded = orjson.loads(body)
    decoded["n"] += 1
    return head + b"\n" + orjson.dumps(decoded)


def session_cycle(manager: SessionManager, sid: str) -> Callable[[], None]:
    def cycle() -> None:
        s = manager.start(sid)
        s["n"] += 1
        s.write_close()

    return cycle


def async_session_cycle(manager: AsyncSessionManager, sid: str) -> Callable[[], Awaitable[None]]:
    async def cycle() -> None:
        s = await manager.start(sid)
        s["n"] += 1
        await s.write_close()

    return cycle


def _stored(got: ReadResult) -> Stored:
    assert isinstance(got, Stored)
    return got


def store_cycle(store: Store, key: str) -> Callable[[], None]:
    """coatcheck's store alone doing the baseline's work: read + lock, bump, fenced write."""
    lock = LockRequest(TOKEN, LEASE)

    def cycle() -> None:
        got = _stored(store.read(key, lock))
        store.write(key, bump(got.payload), time.time() + IDLE, expect=None, token=TOKEN)

    return cycle


def async_store_cycle(store: AsyncStore, key: str) -> Callable[[], Awaitable[None]]:
    lock = LockRequest(TOKEN, LEASE)

    async def cycle() -> None:
        got = _stored(await store.read(key, lock))
        await store.write(key, bump(got.payload), time.time() + IDLE, expect=None, token=TOKEN)

    return cycle
