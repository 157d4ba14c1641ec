"""Moving sessions between stores: the migrating wrapper, the copy, and both under load.

The store contract through the wrapper is the conformance suite's
(tests/conformance/test_migrating_stores.py); this module tests what migration adds: writes
reaching both stores, the new store's failures, URLs, and copies that resume and lose
nothing while requests keep running. Stores are real SQLite files, PostgreSQL tables and
Redis prefixes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck import (
    AsyncSessionManager,
    Config,
    ConfigError,
    SessionManager,
    StoreUnavailable,
    open_async_store,
    open_store,
)
from coatcheck.ids import storage_key
from coatcheck.record import Header, pack
from coatcheck.stores.base import LOCKED, AsyncStore, LockRequest, Store, Stored
from coatcheck.stores.sqlite import SQLiteStore
from coatcheck.wrappers import (
    AsyncMigratingStore,
    CopyReport,
    EncryptedStore,
    MigratingStore,
    acopy_sessions,
    copy_sessions,
)
from coatcheck.wrappers.migrating import split_url

from .services import require
from .stores import CASES, StoreCase
from .support.forwarding import Forwarding
from .test_docs import _SERVER_URL, ROOT, read_blocks

BY_NAME = {c.name: c for c in CASES}
TARGET_VARIABLE = "COATCHECK_TEST_MIGRATE_TO"
DEAD_REDIS = "redis://127.0.0.1:1/0?prefix=cc_dead:"  # nothing listens on port 1


def manager(store: Store, **options: Any) -> SessionManager:
    return SessionManager(store, Config(gc_probability=0, cookie_secure=True, **options))


def new_session(m: SessionManager, data: dict[str, Any]) -> str:
    s = m.start()
    s.update(data)
    s.write_close()
    sid: str = s.id
    return sid


def stored(store: Store, key: str) -> Stored:
    got = store.read(key)
    assert isinstance(got, Stored)
    return got


@pytest.fixture
def url_of(tmp_path: Path) -> Iterator[Any]:
    """``url_of("postgresql")``: a fresh namespace of that store, dropped after the test."""
    made: list[tuple[StoreCase, str]] = []

    def make(name: str) -> str:
        case = BY_NAME[name]
        endpoint = case.endpoint()
        if endpoint is not None:
            require(*endpoint, name)
        where = tmp_path / f"{name}-{len(made)}"
        where.mkdir()
        url = case.make_url(where)
        made.append((case, url))
        return url

    yield make
    for case, url in made:
        if case.cleanup is not None:
            case.cleanup(url)


def fill(store: Store, n: int, *, ttl: float = 3600) -> dict[str, bytes]:
    """``n`` records with real payloads, written straight to ``store``; key -> payload."""
    records: dict[str, bytes] = {}
    now = time.time()
    for i in range(n):
        key = storage_key(f"sid-{i}-{random.random()}")
        payload = pack(Header(created=now), b'{"user":%d,"cart":[1,2,3]}' % i)
        store.write(key, payload, now + ttl + i)
        records[key] = payload
    return records


# --- the wrapper ---------------------------------------------------------------------------


def test_writes_touches_and_destroys_reach_both_stores(url_of: Any) -> None:
    old, new = open_store(url_of("sqlite")), open_store(url_of("postgresql"))
    store = MigratingStore(old, new)
    m = manager(store, lazy_write=True, touch_threshold=0.001)
    sid = new_session(m, {"n": 1})
    key = storage_key(sid)
    assert stored(new, key).payload == stored(old, key).payload  # a new session: both

    with m.start(sid) as s:
        s["n"] = 2
    assert stored(new, key).payload == stored(old, key).payload
    assert m.start(sid, read_only=True)["n"] == 2

    before = stored(new, key).expires_at
    time.sleep(0.05)
    with m.start(sid) as s:  # nothing changed: lazy write touches instead of writing
        assert s["n"] == 2
    assert stored(old, key).expires_at > before
    assert stored(new, key).expires_at == stored(old, key).expires_at

    m.start(sid).destroy()
    assert old.read(key) is None and new.read(key) is None
    assert store.failures == 0


def test_reads_and_locks_are_the_old_stores(url_of: Any) -> None:
    old, new = open_store(url_of("redis")), open_store(url_of("sqlite"))
    store = MigratingStore(old, new)
    m = manager(store)
    sid = new_session(m, {"who": "old"})
    key = storage_key(sid)
    got = stored(new, key)
    new.write(key, pack(Header(created=time.time()), b'{"who":"new"}'), got.expires_at)
    assert m.start(sid, read_only=True)["who"] == "old"  # the old store is the truth

    held = m.start(sid)  # holds the lock, in the old store only
    assert store.read(key, LockRequest("other", 5)) is LOCKED
    assert isinstance(new.read(key, LockRequest("other", 5)), Stored)
    new.release(key, "other")
    held.write_close()
    assert store.validate_id(key) and store.count() == 1
    assert [meta.key for meta in store.scan()] == [key]


def test_gc_runs_on_both_and_counts_the_old_stores_records(url_of: Any) -> None:
    old, new = open_store(url_of("sqlite")), open_store(url_of("postgresql"))
    store = MigratingStore(old, new)
    store.write("a" * 64, b"x", time.time() + 5)
    store.clock = lambda: time.time() + 60  # sets both stores' clocks
    assert old.clock is new.clock
    assert store.gc() == 1
    new.clock = old.clock = time.time
    assert new.read("a" * 64) is None  # deleted from the new store, not only expired
    assert old.read("a" * 64) is None


def test_a_failing_new_store_never_fails_the_request(
    url_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The new store is down (a real Redis URL nobody answers): requests go on, counted."""
    old = open_store(url_of("sqlite"))
    store = MigratingStore(old, open_store(DEAD_REDIS))
    store.open()
    m = manager(store)
    with caplog.at_level(logging.WARNING, logger="coatcheck"):
        sid = new_session(m, {"n": 1})
        with m.start(sid) as s:
            s["n"] += 1
        assert m.start(sid, read_only=True)["n"] == 2
    assert store.failures >= 2
    messages = [r.getMessage() for r in caplog.records if "migrating store" in r.getMessage()]
    assert messages and all(sid not in text for text in messages)
    assert any(storage_key(sid) in text and "stale copy" in text for text in messages)


class LosesWriteReplies(Forwarding):
    """A real store whose writes run, then lose their reply (as a network timeout does)."""

    def write(self, *args: Any, **kwargs: Any) -> int:
        self.inner.write(*args, **kwargs)
        raise StoreUnavailable("reply lost (timed out after the store ran the command)")


def test_a_failed_write_drops_the_new_copy_and_the_next_copy_restores_it(url_of: Any) -> None:
    old, new = open_store(url_of("sqlite")), open_store(url_of("postgresql"))
    m = manager(MigratingStore(old, new))
    sid = new_session(m, {"n": 1})
    key = storage_key(sid)
    flaky = MigratingStore(old, LosesWriteReplies(new))
    with manager(flaky).start(sid) as s:
        s["n"] = 2
    assert flaky.failures == 1
    assert new.read(key) is None  # possibly stale, so dropped: never a wrong copy
    report = copy_sessions(old, new)
    assert report == CopyReport(copied=1, skipped=0, total=1)
    assert stored(new, key).payload == stored(old, key).payload


class SlowFirstWrite(SQLiteStore):
    """A real SQLite store whose first write stalls (a slow network), then goes through."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.stalled = threading.Event()

    def write(self, *args: Any, **kwargs: Any) -> int:
        if not self.stalled.is_set():
            self.stalled.set()
            time.sleep(0.3)
        return super().write(*args, **kwargs)


def test_a_slow_new_store_gets_one_sessions_writes_in_lock_order(tmp_path: Path) -> None:
    """The first request's write to the new store stalls while the next request waits for
    the lock: the new store must still end with the next request's data, not the first's."""
    old, new = SQLiteStore(str(tmp_path / "old.db")), SlowFirstWrite(str(tmp_path / "new.db"))
    sid = new_session(manager(old), {"n": 0})  # from before the move
    m = manager(MigratingStore(old, new), lock_backoff=0.001, lock_backoff_max=0.002)
    first = m.start(sid)
    first["n"] = 1

    def next_request() -> None:
        with m.start(sid) as s:
            s["n"] += 1

    waiting = threading.Thread(target=next_request)
    waiting.start()
    time.sleep(0.05)  # let it queue for the lock (if it queues later, the order holds anyway)
    first.write_close()
    waiting.join()
    key = storage_key(sid)
    assert manager(old).start(sid, read_only=True)["n"] == 2
    assert stored(new, key).payload == stored(old, key).payload


def test_the_two_stores_must_be_two() -> None:
    store = SQLiteStore(":memory:")
    with pytest.raises(ConfigError, match="same store"):
        MigratingStore(store, store)
    with pytest.raises(ConfigError, match="same store"):
        copy_sessions(store, store)


# --- URLs --------------------------------------------------------------------------------


def test_a_store_url_with_migrate_to_opens_the_pair(
    url_of: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_url, new_url = url_of("sqlite"), url_of("postgresql")
    monkeypatch.setenv(TARGET_VARIABLE, new_url)
    monkeypatch.setenv("COATCHECK_TEST_KEYS", "A" * 43)
    store = open_store(
        f"{old_url}?migrate_to=env:{TARGET_VARIABLE}&encrypt=env:COATCHECK_TEST_KEYS"
    )
    assert isinstance(store, MigratingStore)
    assert isinstance(store.old, EncryptedStore)  # the other options stay the old store's
    assert not isinstance(store.new, EncryptedStore)
    sid = new_session(manager(store), {"n": 1})
    assert open_store(new_url).validate_id(storage_key(sid))
    asynchronous = open_async_store(f"{old_url}?migrate_to=env:{TARGET_VARIABLE}")
    assert isinstance(asynchronous, AsyncMigratingStore)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("migrate_to=postgresql://localhost/test", None, "env:VARIABLE"),
        ("migrate_to=env:", None, "env:VARIABLE"),
        (f"migrate_to=env:{TARGET_VARIABLE}", None, "not set"),
        (f"migrate_to=env:{TARGET_VARIABLE}", "sqlite:///b.db?migrate_to=env:X", "itself"),
        (f"migrate_to=env:{TARGET_VARIABLE}&migrate_to=env:Y", "memory://", "twice"),
    ],
)
def test_a_bad_migrate_to_is_one_clear_error(
    option: str, value: str | None, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TARGET_VARIABLE, raising=False)
    if value is not None:
        monkeypatch.setenv(TARGET_VARIABLE, value)
    with pytest.raises(ConfigError, match=words):
        open_store(f"sqlite:///a.db?{option}")


def test_split_url_leaves_other_urls_alone() -> None:
    assert split_url("redis://h/0?prefix=a:&encrypt=env:K") == (
        "redis://h/0?prefix=a:&encrypt=env:K",
        None,
    )


# --- the copy ----------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgresql"), ("redis", "sqlite")])
def test_copy_sessions_copies_every_live_record_as_it_is(
    source: str, target: str, url_of: Any
) -> None:
    src, dst = open_store(url_of(source)), open_store(url_of(target))
    records = fill(src, 130)
    seen: list[tuple[int, int | None]] = []
    report = copy_sessions(
        src, dst, progress=lambda done, total: seen.append((done, total)), batch=50
    )
    assert report == CopyReport(copied=130, skipped=0, total=130)
    assert seen == [(50, 130), (100, 130), (130, 130)]
    for key, payload in records.items():
        got = stored(dst, key)
        assert got.payload == payload
        assert got.expires_at == pytest.approx(stored(src, key).expires_at, abs=1e-3)
    assert dst.count() == 130


def test_copy_sessions_skips_expired_records(url_of: Any) -> None:
    src, dst = open_store(url_of("sqlite")), open_store(url_of("postgresql"))
    live = fill(src, 3)
    src.write("e" * 64, b"gone", time.time() - 1)  # expired, not collected yet
    assert copy_sessions(src, dst).copied == 3
    assert dst.read("e" * 64) is None and set(live) == {m.key for m in dst.scan()}


def test_a_stopped_copy_resumes_and_overwrites_nothing(url_of: Any) -> None:
    src, dst = open_store(url_of("sqlite")), open_store(url_of("postgresql"))
    records = fill(src, 120)
    theirs = dict(list(records.items())[:10])  # already in the target, other contents
    for key in theirs:
        dst.write(key, b"written by the migrating store", time.time() + 3600)

    class Stop(Exception):
        pass

    def stop_after_one_batch(done: int, total: int | None) -> None:
        raise Stop

    with pytest.raises(Stop):
        copy_sessions(src, dst, progress=stop_after_one_batch, batch=50)
    first = {m.key: stored(dst, m.key).version for m in dst.scan()}
    assert 10 < len(first) < 120

    report = copy_sessions(src, dst, batch=50)
    assert report == CopyReport(copied=120 - len(first), skipped=len(first), total=120)
    for key, payload in records.items():
        got = stored(dst, key)
        assert got.payload == (b"written by the migrating store" if key in theirs else payload)
        if key in first:
            assert got.version == first[key]  # copied once: never written again


async def test_a_copy_to_a_store_that_is_down_raises_store_unavailable(tmp_path: Path) -> None:
    src = open_store(f"sqlite:///{tmp_path}/a.db")
    fill(src, 20)
    with pytest.raises(StoreUnavailable):
        copy_sessions(src, open_store(DEAD_REDIS), batch=5)
    async with open_async_store(f"sqlite:///{tmp_path}/a.db") as source:
        with pytest.raises(StoreUnavailable):
            await acopy_sessions(source, open_async_store(DEAD_REDIS), batch=5)


async def test_the_async_wrapper_and_copy(url_of: Any) -> None:
    old_url, new_url, copy_url = url_of("sqlite"), url_of("postgresql"), url_of("redis")
    old: AsyncStore = open_async_store(old_url)
    new: AsyncStore = open_async_store(new_url)
    store = AsyncMigratingStore(old, new)
    async with store:
        m = AsyncSessionManager(store, Config(gc_probability=0, cookie_secure=True))
        s = await m.start()
        s["n"] = 1
        await s.write_close()
        key = storage_key(s.id)
        got_old, got_new = await old.read(key), await new.read(key)
        assert isinstance(got_old, Stored) and isinstance(got_new, Stored)
        assert got_old.payload == got_new.payload
        async with open_async_store(copy_url) as target:
            seen: list[tuple[int, int | None]] = []
            report = await acopy_sessions(store, target, progress=lambda *a: seen.append(a))
            again = await acopy_sessions(old, target)
            copied = await target.read(key)
        assert report == CopyReport(copied=1, skipped=0, total=1) and seen == [(1, 1)]
        assert again == CopyReport(copied=0, skipped=1, total=1)
        assert isinstance(copied, Stored) and copied.payload == got_old.payload


# --- under load --------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgresql"), ("redis", "sqlite")])
def test_nothing_is_lost_when_requests_run_during_the_copy(
    source: str, target: str, url_of: Any
) -> None:
    """Threads increment counters through the migrating store while the copy runs."""
    old_url, new_url = url_of(source), url_of(target)
    old, new = open_store(old_url), open_store(new_url)
    before = manager(old)  # sessions from before the migration: in the old store only
    sids = [new_session(before, {"n": 0}) for _ in range(12)]
    doomed = [new_session(before, {"n": 0}) for _ in range(10)]  # logged out meanwhile
    store = MigratingStore(old, new)
    m = manager(store, lock_wait=30, lock_lease=10)
    made = dict.fromkeys(sids, 0)
    progressed = threading.Condition()
    copying, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                sid = rng.choice(sids)
                with m.start(sid) as s:
                    s["n"] += 1
                with progressed:
                    made[sid] += 1
                    progressed.notify_all()
        except BaseException as e:  # the assertion below reports it
            with progressed:
                errors.append(e)
                progressed.notify_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    reports: list[CopyReport] = []

    def requests_meanwhile(done: int, total: int | None, more: int = 10) -> None:
        """Between two batches, let more requests finish: the copy and the load overlap."""
        with progressed:
            goal = sum(made.values()) + more
            progressed.wait_for(lambda: sum(made.values()) >= goal or bool(errors))

    def copy() -> None:
        with open_store(old_url) as src, open_store(new_url) as dst:
            copying.set()
            reports.append(copy_sessions(src, dst, batch=10, progress=requests_meanwhile))

    copier = threading.Thread(target=copy)
    copier.start()
    copying.wait()
    for sid in doomed:
        m.start(sid).destroy()
    copier.join()
    requests_meanwhile(0, None, more=300)  # and more requests after the copy
    stop.set()
    for t in threads:
        t.join()

    assert not errors, errors
    assert store.failures == 0
    assert reports and reports[0].total == reports[0].copied + reports[0].skipped
    assert sum(made.values()) > 0
    for sid in sids:
        key = storage_key(sid)
        assert stored(new, key).payload == stored(old, key).payload
        assert stored(new, key).expires_at == pytest.approx(stored(old, key).expires_at, abs=1e-3)
        assert manager(new).start(sid, read_only=True)["n"] == made[sid]
    for sid in doomed:
        assert new.read(storage_key(sid)) is None  # no logged-out session comes back
    assert {meta.key for meta in new.scan()} == {meta.key for meta in old.scan()}


# --- the docs ----------------------------------------------------------------------------


def test_the_docs_page_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = ROOT / "docs" / "migrating" / "between-stores.md"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEW_SESSION_STORE", "")  # the page sets it; restored afterwards
    runnable = [b for b in read_blocks(page) if b.runnable]
    assert len(runnable) >= 2
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for block in runnable:
        assert _SERVER_URL.search(block.code) is None, f"{page}:{block.line} needs a server"
        exec(compile("\n" * (block.line - 1) + block.code, str(page), "exec"), namespace)
