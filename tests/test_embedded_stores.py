"""What the memory, file and SQLite stores do beyond the conformance suite: their URLs, the
files and directories they create (and when), and SQLite under a busy writer."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck import ConfigError, StoreUnavailable, open_async_store, open_store
from coatcheck.errors import LockLost, VersionMismatch
from coatcheck.ids import storage_key
from coatcheck.locks import new_token
from coatcheck.stores.base import (
    LOCKED,
    MUST_CREATE,
    MUST_EXIST,
    AsyncStore,
    LockRequest,
    Store,
    Stored,
)
from coatcheck.stores.sqlite import AsyncSQLiteStore, SQLiteStore

from .test_docs import ROOT, read_blocks

KEY = storage_key("A" * 43)
LATER = time.time() + 3600
TABLE = "coatcheck_sessions"


def run(store: Store | AsyncStore, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` on a sync or an async store, the same way."""
    result = getattr(store, method)(*args, **kwargs)
    if isinstance(store, AsyncStore):
        if method == "scan":
            return asyncio.run(_collect(result))
        return asyncio.run(result)
    return list(result) if method == "scan" else result


async def _collect(items: Any) -> list[Any]:
    return [item async for item in items]


OPENERS = [pytest.param(open_store, id="sync"), pytest.param(open_async_store, id="async")]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("opener", OPENERS)
def test_sqlite_three_slashes_is_relative_four_absolute(
    opener: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    run(opener("sqlite:///relative.db"), "write", KEY, b"x", LATER)
    assert (tmp_path / "relative.db").is_file()
    absolute = tmp_path / "sub" / "absolute.db"
    absolute.parent.mkdir()
    assert str(absolute).startswith("/")  # so the URL has four slashes
    run(opener(f"sqlite:///{absolute}"), "write", KEY, b"x", LATER)
    assert absolute.is_file()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/sessions.db",  # sqlite URLs name no host
        "sqlite:///",
        "sqlite:///:memory:",  # one database per thread: use memory://
        "sqlite:///s.db?timeout=0",
        "sqlite:///s.db?table=drop;table",
        "sqlite:///s.db?wal=off",
        "file:///tmp/s?mode=999",
        "file:///tmp/s?mode=rw",
        "file://",
        "memory://?size=10",
    ],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)
    with pytest.raises(ConfigError):
        open_async_store(url)


def _hold_write_lock(path: Path, seconds: float) -> threading.Timer:
    """Another connection writes (rollback-journal mode) for ``seconds``."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other_app (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other_app VALUES (1)")

    def release() -> None:
        holder.execute("COMMIT")
        holder.close()

    timer = threading.Timer(seconds, release)
    timer.start()
    return timer


@pytest.mark.parametrize("opener", OPENERS)
def test_sqlite_opening_waits_for_a_writer_instead_of_failing(opener: Any, tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    timer = _hold_write_lock(path, 0.3)
    store = opener(f"sqlite:///{path}?timeout=5")
    started = time.monotonic()
    run(store, "open")  # switching to WAL needs the writer gone
    waited = time.monotonic() - started
    timer.join()
    assert waited >= 0.2
    assert run(store, "write", KEY, b"x", LATER) == 1


def test_sqlite_opening_gives_up_after_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    timer = _hold_write_lock(path, 1.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="locked"):
        open_store(f"sqlite:///{path}?timeout=0.2").open()
    assert 0.15 <= time.monotonic() - started < 0.9
    timer.join()


@pytest.mark.parametrize("opener", OPENERS)
def test_file_store_creates_every_missing_directory_private(
    opener: Any, tmp_path: Path, umask_022: None
) -> None:
    top = tmp_path / "a"
    run(opener(f"file://{top}/b/c"), "write", KEY, b"x", LATER)
    for directory in (top, top / "b", top / "b" / "c"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


READ_ONLY_CALLS: list[tuple[str, tuple[Any, ...], Any]] = [
    ("open", (), None),
    ("read", (KEY,), None),
    ("read", (KEY, LockRequest("t", 30)), None),
    ("validate_id", (KEY,), False),
    ("count", (), 0),
    ("scan", (), []),
    ("gc", (), 0),
    ("update_timestamp", (KEY, LATER), None),
    ("release", (KEY, "t"), None),
    ("destroy", (KEY,), None),
]


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize("url", ["sqlite:///{tmp}/s.db", "file://{tmp}/sessions"])
def test_reading_where_nothing_was_written_creates_nothing(
    opener: Any, url: str, tmp_path: Path
) -> None:
    store = opener(url.format(tmp=tmp_path))
    for method, args, expected in READ_ONLY_CALLS:
        assert run(store, method, *args) == expected, method
    assert list(tmp_path.iterdir()) == []
    run(store, "write", KEY, b"x", LATER)
    assert run(store, "count") == 1


@pytest.mark.parametrize("opener", OPENERS)
def test_sqlite_reading_a_database_without_the_table_creates_nothing(
    opener: Any, tmp_path: Path
) -> None:
    path = tmp_path / "app.db"
    sqlite3.connect(path).execute("CREATE TABLE app_data (x)").connection.close()
    store = opener(f"sqlite:///{path}")
    for method, args, expected in READ_ONLY_CALLS:
        assert run(store, method, *args) == expected, method
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")
    assert [name for (name,) in tables] == ["app_data"]


@pytest.mark.parametrize("cls", [SQLiteStore, AsyncSQLiteStore])
def test_sqlite_create_schema_creates_the_file_and_the_table(cls: Any, tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = cls(str(path), table="sessions")
    run(store, "create_schema")
    run(store, "create_schema")  # idempotent
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")
    assert [name for (name,) in tables] == ["sessions"]


@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize("url", ["memory://", "file://{tmp}/s", "sqlite:///{tmp}/s.db"])
def test_keys_must_be_storage_keys(opener: Any, url: str, tmp_path: Path) -> None:
    store = opener(url.format(tmp=tmp_path))
    for method, args in [
        ("write", ("../../escape", b"x", LATER)),
        ("read", (KEY.upper(),)),
        ("destroy", ("",)),
        ("validate_id", (KEY + "0",)),
    ]:
        with pytest.raises(ValueError, match="storage key"):
            run(store, method, *args)


def test_the_embedded_stores_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    blocks = [b for b in read_blocks(ROOT / "docs/stores/embedded.md") if b.language == "python"]
    assert blocks
    for block in blocks:
        exec(compile(block.code, f"docs/stores/embedded.md:{block.line}", "exec"), namespace)


# --- SQLite: one statement per operation, and the careful path behind it --------------------


def _sqlite_store(path: Path, asynchronous: bool, returning: bool) -> Any:
    cls = AsyncSQLiteStore if asynchronous else SQLiteStore
    store = cls(str(path))
    store.returning = returning
    return store


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("returning", [True, False], ids=["one-statement", "transactions"])
def test_sqlite_both_paths_keep_the_contract(
    tmp_path: Path, asynchronous: bool, returning: bool
) -> None:
    """The one-statement path and the transactions (SQLite < 3.35) answer and refuse alike."""
    store = _sqlite_store(tmp_path / "s.db", asynchronous, returning)
    now = [1000.25]
    store.clock = lambda: now[0]
    assert run(store, "write", KEY, b"one", 2000.5, expect=MUST_CREATE) == 1
    with pytest.raises(VersionMismatch):
        run(store, "write", KEY, b"again", 2000.5, expect=MUST_CREATE)
    a, b = LockRequest("token-a", 30), LockRequest("token-b", 30)
    assert run(store, "read", KEY, a) == Stored(b"one", 2000.5, 1)
    assert run(store, "read", KEY, b) is LOCKED
    assert run(store, "read", KEY, a) == Stored(b"one", 2000.5, 1)  # re-entrant
    with pytest.raises(LockLost):
        run(store, "write", KEY, b"b", 2000.5, token="token-b")
    with pytest.raises(VersionMismatch):
        run(store, "write", KEY, b"a", 2000.5, expect=7, token="token-a")
    run(store, "release", KEY, "token-b")  # a stranger's release changes nothing
    assert run(store, "read", KEY, b) is LOCKED
    assert run(store, "write", KEY, b"two", 2000.5, expect=1, token="token-a") == 2  # and unlocks
    with pytest.raises(LockLost):
        run(store, "write", KEY, b"late", 2000.5, token="token-a")  # released: no lease
    assert run(store, "read", KEY, b) == Stored(b"two", 2000.5, 2)
    now[0] += 31  # b's lease ends without a release
    with pytest.raises(LockLost):
        run(store, "write", KEY, b"b", 2000.5, token="token-b")
    assert run(store, "read", KEY, LockRequest("token-c", 30)) == Stored(b"two", 2000.5, 2)
    run(store, "update_timestamp", KEY, 1500.0, token="token-c")  # never moves a deadline back
    assert run(store, "read", KEY, a) == Stored(b"two", 2000.5, 2)  # and c's lock is gone
    assert run(store, "write", KEY, b"three", 2000.5, expect=MUST_EXIST, token="token-a") == 3
    assert run(store, "write", KEY, b"four", 2100.5) == 4  # unfenced, unchecked
    assert run(store, "write", KEY, b"five", 2100.5, expect=4) == 5  # optimistic
    with pytest.raises(VersionMismatch):
        run(store, "write", KEY, b"stale", 2100.5, expect=4)
    other = storage_key("B" * 43)
    with pytest.raises(VersionMismatch):
        run(store, "write", other, b"x", 2100.5, expect=MUST_EXIST)
    run(store, "write", other, b"x", 1001.0)
    now[0] = 1002.0  # past other's deadline: returned as it is, never locked
    assert run(store, "read", other, a) == Stored(b"x", 1001.0, 1)
    assert run(store, "read", other, b) == Stored(b"x", 1001.0, 1)
    assert run(store, "validate_id", other) is False
    assert run(store, "validate_id", KEY) is True
    run(store, "destroy", KEY)
    assert run(store, "read", KEY, a) is None
    assert run(store, "validate_id", KEY) is False
    run(store, "close")


def test_sqlite_old_and_new_processes_share_one_lock(tmp_path: Path) -> None:
    """During an upgrade, a store on the transactions (older coatcheck, or SQLite < 3.35)
    and one on single statements share a database: each respects the other's lease."""
    new = _sqlite_store(tmp_path / "s.db", False, True)
    old = _sqlite_store(tmp_path / "s.db", False, False)
    new.write(KEY, b"x", LATER)
    assert isinstance(new.read(KEY, LockRequest("new", 30)), Stored)
    assert old.read(KEY, LockRequest("old", 30)) is LOCKED
    new.write(KEY, b"by new", LATER, token="new")  # a released lease keeps its token...
    got = old.read(KEY, LockRequest("old", 30))  # ...and is free to the old code too
    assert isinstance(got, Stored) and got.payload == b"by new"
    assert new.read(KEY, LockRequest("new2", 30)) is LOCKED
    with pytest.raises(LockLost):
        new.write(KEY, b"x", LATER, token="new")
    old.write(KEY, b"by old", LATER, token="old")
    got = new.read(KEY, LockRequest("new2", 30))
    assert isinstance(got, Stored) and got.payload == b"by old"
    new.close()
    old.close()


def test_sqlite_a_session_cycle_is_two_statements(tmp_path: Path) -> None:
    """Read + lock is one statement and the fenced write another: no BEGIN, no SELECT first."""
    store = SQLiteStore(str(tmp_path / "s.db"))
    store.write(KEY, b"x", LATER)
    conn = sqlite3.connect(tmp_path / "s.db")  # SQLite's own view of the row, for its shape
    # typeof() of every column and the byte length of the variable ones: a REAL lock_until
    # takes 8 bytes on disk, a whole number (0) none, a NULL token none
    shape = (
        "SELECT typeof(payload), length(payload), typeof(expires_at), typeof(version),"
        f" typeof(lock_token), length(lock_token), typeof(lock_until) FROM {TABLE}"
    )
    sent: list[str] = []
    store._connection(create=False).set_trace_callback(sent.append)
    shapes = []
    for n in range(3):
        token = new_token()
        got = store.read(KEY, LockRequest(token, 30))
        assert isinstance(got, Stored)
        shapes.append(conn.execute(shape).fetchone())
        store.write(KEY, got.payload[:-1] + str(n).encode(), LATER, token=token)
        shapes.append(conn.execute(shape).fetchone())
    # locked or released, the row keeps its size (a released lease keeps its token and a
    # lock_until that is a REAL), so SQLite rewrites it in place
    assert len(set(shapes)) == 1
    assert shapes[0][-3:] == ("text", 22, "real")
    assert [s.split()[0] for s in sent] == ["UPDATE", "UPDATE"] * 3
    sent.clear()
    store.read(KEY)
    store.update_timestamp(KEY, LATER + 1, token="nobody")
    store.release(KEY, "nobody")
    store.validate_id(KEY)
    assert [s.split()[0] for s in sent] == ["SELECT", "UPDATE", "UPDATE", "SELECT"]
    conn.close()
    store.close()


def test_sqlite_gc_deletes_in_paced_batches_and_keeps_live_sessions(tmp_path: Path) -> None:
    """More expired rows than any one batch takes: every one goes, no live session does."""
    from coatcheck.stores._gc import GC_FIRST, GcPace

    now = [time.time()]
    store = open_store(f"sqlite:///{tmp_path}/gc.db")
    store.clock = lambda: now[0]
    expired = GC_FIRST * 4 + 7
    for i in range(expired):
        store.write(storage_key(f"old{i}"), b"x", now[0] + 1)
    live = [storage_key(f"live{i}") for i in range(5)]
    for key in live:
        store.write(key, b"y", now[0] + 600)
    now[0] += 10
    sizes: list[int] = []
    done = GcPace.done

    def spy(pace: GcPace, rows: int, elapsed: float) -> None:
        sizes.append(rows)
        done(pace, rows, elapsed)

    GcPace.done = spy  # type: ignore[method-assign]
    try:
        assert store.gc() == expired
    finally:
        GcPace.done = done  # type: ignore[method-assign]
    assert len(sizes) >= 2 and sizes[0] == GC_FIRST  # batches, the first of GC_FIRST rows
    assert store.count() == len(live) and all(store.validate_id(k) for k in live)
    store.close()
