"""The custom-store example in docs/custom-store.md runs and keeps the contract."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import pytest

from coatcheck import Config, LockLost, LockTimeout, SessionManager
from coatcheck.testing import conformance_suite

ROOT = Path(__file__).resolve().parents[1]


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "database_handler", ROOT / "examples" / "database_handler.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["database_handler"] = module
    spec.loader.exec_module(module)
    return module


def test_example_store_round_trip_lock_fencing_and_gc(tmp_path: Path) -> None:
    store = load_example().DatabaseSessionHandler(str(tmp_path / "s.db"))
    m = SessionManager(
        store, Config(gc_probability=0, lock_lease=0.5, idle_timeout=5, touch_threshold=1)
    )
    with m.start() as s:
        s["user_id"] = 42
    holder = m.start(s.id)
    assert holder["user_id"] == 42
    with pytest.raises(LockTimeout):
        SessionManager(store, Config(lock_wait=0.05)).start(s.id)
    time.sleep(0.7)
    with SessionManager(store, Config(lock_wait=0)).start(s.id) as other:
        other["user_id"] = 7
    holder["user_id"] = 1
    with pytest.raises(LockLost):
        holder.write_close()
    assert store.count() == 1
    store.db.execute("UPDATE sessions SET expires_at = 0")
    assert store.gc() == 1 and store.count() == 0


def test_example_main_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    load_example().main()
    out = capsys.readouterr().out
    assert "Stored session for user 42" in out and "'role': 'admin'" in out


# The whole store conformance suite against the example, sync and async: the one line the docs
# promise a store author (each store gets a database file of its own).
_example = load_example()
_dbs = tempfile.TemporaryDirectory()
_n = itertools.count()


def _path() -> str:
    return f"{_dbs.name}/{next(_n)}.db"


globals().update(
    conformance_suite(
        open_sync=lambda: _example.DatabaseSessionHandler(_path()),
        open_async=lambda: _example.AsyncDatabaseSessionHandler(_path()),
        name="database_handler",
    )
)
