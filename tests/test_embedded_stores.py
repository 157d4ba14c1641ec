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
from coatcheck.ids import storage_key
from coatcheck.stores.base import AsyncStore, LockRequest, Store
from coatcheck.stores.sqlite import AsyncSQLiteStore, SQLiteStore

from .test_docs import ROOT, read_blocks

KEY = storage_key("A" * 43)
LATER = time.time() + 3600


def run(store: Store | AsyncStore, method: str, *args: Any) -> Any:
    """Call ``method`` on a sync or an async store, the same way."""
    result = getattr(store, method)(*args)
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
