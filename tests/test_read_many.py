"""``read_many``: the admin batch read (``coatcheck ls --expired``, ``stats``), every store.

Every store in tests/stores.py, plus Redis Cluster (a pipeline whose keys sit on several
nodes), sync and async; then the encrypted and migrating wrappers, which must pass the
inner store's batch read through. What is checked: records in the order asked, None for
missing keys, expired records as ``read()`` gives them, no lock taken or respected, bad
keys refused, and the same answer as one ``read()`` per key.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck import open_async_store, open_store
from coatcheck.contract import LOCKED, LockRequest, Stored
from coatcheck.crypto import new_key
from coatcheck.ids import new_id, storage_key
from coatcheck.stores.base import AsyncStore, Store
from coatcheck.stores.memory import AsyncMemoryStore, MemoryStore
from coatcheck.wrappers import (
    UNREADABLE,
    AsyncEncryptedStore,
    AsyncMigratingStore,
    EncryptedStore,
    MigratingStore,
)
from tests.support.redis import drop_namespace

from .conftest import aw
from .services import require
from .stores import CASES, StoreCase

CLUSTER_NODES = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
CLUSTER = StoreCase(
    "redis-cluster",
    "coatcheck.stores.redis",
    lambda tmp: f"{CLUSTER_NODES}?prefix=cc_{uuid.uuid4().hex[:12]}:",
    server="redis://127.0.0.1:7000",
    cleanup=drop_namespace,
)
KINDS = ["sync", "async"]


def key() -> str:
    return storage_key(new_id())


def bare(results: list[Any]) -> list[Stored | None]:
    """``read()`` results as read_many gives them (a plain read is never LOCKED)."""
    assert LOCKED not in results
    return list(results)


@pytest.fixture(params=[*CASES, CLUSTER], ids=lambda c: c.name)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    case: StoreCase = request.param
    endpoint = case.endpoint()
    if endpoint is not None:
        require(*endpoint, case.name)
    made = case.make_url(tmp_path)
    yield made
    if case.cleanup is not None:
        case.cleanup(made)


def opened(url: str, kind: str) -> Any:
    return open_store(url) if kind == "sync" else open_async_store(url)


@pytest.mark.parametrize("kind", KINDS)
async def test_present_missing_and_expired_in_one_call(url: str, kind: str) -> None:
    store = opened(url, kind)
    await aw(store.open())
    try:
        now = time.time()
        a, b, gone, expired = key(), key(), key(), key()
        await aw(store.write(a, b"alpha", now + 600))
        await aw(store.write(a, b"alpha 2", now + 900))  # version 2
        await aw(store.write(b, b"beta", now + 600))
        await aw(store.write(expired, b"old", now - 60))
        await aw(store.write(gone, b"deleted", now + 600))
        await aw(store.destroy(gone))
        keys = [b, gone, a, expired, a]
        got = await aw(store.read_many(keys))
        assert len(got) == len(keys)
        assert got[0] is not None and (got[0].payload, got[0].version) == (b"beta", 1)
        assert got[1] is None
        assert got[2] is not None and (got[2].payload, got[2].version) == (b"alpha 2", 2)
        assert got[2].expires_at == pytest.approx(now + 900, abs=0.01)
        assert got[4] == got[2]  # a key asked twice is answered twice
        assert got[3] is None or got[3].expires_at <= now  # may be returned, never as live
        assert got == bare([await aw(store.read(k)) for k in keys])
        assert await aw(store.read_many([])) == []
    finally:
        await aw(store.close())


@pytest.mark.parametrize("kind", KINDS)
async def test_order_kept_across_many_keys(url: str, kind: str) -> None:
    """More keys than one SQLite statement takes: answers still line up with the keys."""
    store = opened(url, kind)
    await aw(store.open())
    try:
        keys = [key() for _ in range(1200)]
        present = {0: b"first", 499: b"end of a chunk", 500: b"next chunk", 1199: b"last"}
        for at, payload in present.items():
            await aw(store.write(keys[at], payload, time.time() + 600))
        got = await aw(store.read_many(keys))
        assert len(got) == len(keys)
        found = {i: s.payload for i, s in enumerate(got) if s is not None}
        assert found == present
    finally:
        await aw(store.close())


@pytest.mark.parametrize("kind", KINDS)
async def test_no_lock_taken_or_respected(url: str, kind: str) -> None:
    store = opened(url, kind)
    await aw(store.open())
    try:
        held, free = key(), key()
        exp = time.time() + 600
        await aw(store.write(held, b"held", exp))
        await aw(store.write(free, b"free", exp))
        holder = LockRequest("holder-token", 30)
        assert isinstance(await aw(store.read(held, holder)), Stored)
        got = await aw(store.read_many([held, free]))
        assert [s.payload if s else None for s in got] == [b"held", b"free"]  # not LOCKED
        # nothing taken: the free record locks at once, the holder's lease still fences
        assert isinstance(await aw(store.read(free, LockRequest("other-token", 30))), Stored)
        assert await aw(store.write(held, b"by holder", exp, token="holder-token")) == 2
    finally:
        await aw(store.close())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", ["nope", "A" * 64, "0" * 63, ""])
async def test_bad_key_refused(url: str, kind: str, bad: str) -> None:
    store = opened(url, kind)
    await aw(store.open())
    try:
        good = key()
        await aw(store.write(good, b"x", time.time() + 600))
        with pytest.raises(ValueError):
            await aw(store.read_many([good, bad]))
    finally:
        await aw(store.close())


BATCHED = {"sqlite", "postgresql", "mysql", "redis", "redis-cluster"}


@pytest.mark.parametrize(
    "case", [c for c in [*CASES, CLUSTER] if c.name in BATCHED], ids=lambda c: c.name
)
def test_server_stores_override_the_default(case: StoreCase, tmp_path: Path) -> None:
    """The stores with a batch query use it rather than the base class's loop of reads."""
    url = case.make_url(tmp_path)  # opening connects to nothing: no server needed
    assert type(open_store(url)).read_many is not Store.read_many
    assert type(open_async_store(url)).read_many is not AsyncStore.read_many


# --- wrappers ---------------------------------------------------------------------------


class Counted(MemoryStore):
    """A real memory store that counts the calls a wrapper makes on it (the reads its own
    read_many makes are not counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = {"read": 0, "read_many": 0}
        self.batch = False

    def read(self, key: str, lock: LockRequest | None = None) -> Any:
        self.calls["read"] += not self.batch
        return super().read(key, lock)

    def read_many(self, keys: list[str]) -> list[Stored | None]:
        self.calls["read_many"] += 1
        self.batch = True
        try:
            return super().read_many(keys)
        finally:
            self.batch = False


class AsyncCounted(AsyncMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = {"read": 0, "read_many": 0}
        self.batch = False

    async def read(self, key: str, lock: LockRequest | None = None) -> Any:
        self.calls["read"] += not self.batch
        return await super().read(key, lock)

    async def read_many(self, keys: list[str]) -> list[Stored | None]:
        self.calls["read_many"] += 1
        self.batch = True
        try:
            return await super().read_many(keys)
        finally:
            self.batch = False


@pytest.mark.parametrize("kind", KINDS)
async def test_encrypted_forwards_and_decrypts(kind: str) -> None:
    keys_now, stranger = [new_key()], [new_key()]
    inner: Any = Counted() if kind == "sync" else AsyncCounted()
    wrapped = EncryptedStore if kind == "sync" else AsyncEncryptedStore
    store, other = wrapped(inner, keys_now), wrapped(inner, stranger)
    a, b, sealed_elsewhere, missing = key(), key(), key(), key()
    exp = time.time() + 600
    await aw(store.write(a, b"alpha", exp))
    await aw(store.write(b, b"beta", exp))
    await aw(other.write(sealed_elsewhere, b"not for us", exp))
    inner.calls.update(read=0, read_many=0)
    asked = [b, missing, sealed_elsewhere, a]
    got = await aw(store.read_many(asked))
    assert inner.calls == {"read": 0, "read_many": 1}  # the inner batch, not a loop of reads
    assert [s.payload if s else None for s in got] == [b"beta", None, UNREADABLE, b"alpha"]
    raw = await aw(inner.read_many([a]))
    assert raw[0] is not None and raw[0].payload != b"alpha"  # sealed at rest
    assert got == bare([await aw(store.read(k)) for k in asked])


@pytest.mark.parametrize("kind", KINDS)
async def test_encrypted_over_a_server_store(url: str, kind: str) -> None:
    store = (EncryptedStore if kind == "sync" else AsyncEncryptedStore)(
        opened(url, kind), [new_key()]
    )
    await aw(store.open())
    try:
        a, missing = key(), key()
        await aw(store.write(a, b"secret", time.time() + 600))
        got = await aw(store.read_many([missing, a]))
        assert got[0] is None and got[1] is not None and got[1].payload == b"secret"
        with pytest.raises(ValueError):
            await aw(store.read_many(["bad"]))
    finally:
        await aw(store.close())


@pytest.mark.parametrize("kind", KINDS)
async def test_migrating_reads_the_old_store(kind: str) -> None:
    pair: Any = (Counted(), Counted()) if kind == "sync" else (AsyncCounted(), AsyncCounted())
    old, new = pair
    store = (MigratingStore if kind == "sync" else AsyncMigratingStore)(old, new)
    both, only_old, only_new = key(), key(), key()
    exp = time.time() + 600
    await aw(store.write(both, b"both", exp))
    await aw(old.write(only_old, b"old", exp))
    await aw(new.write(only_new, b"new", exp))
    old.calls.update(read=0, read_many=0)
    new.calls.update(read=0, read_many=0)
    asked = [only_new, both, only_old]
    got = await aw(store.read_many(asked))
    assert [s.payload if s else None for s in got] == [None, b"both", b"old"]
    assert old.calls == {"read": 0, "read_many": 1}
    assert new.calls == {"read": 0, "read_many": 0}
    with pytest.raises(ValueError):
        await aw(store.read_many([both, "bad"]))
