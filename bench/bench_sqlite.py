"""Session cycle on SQLite: coatcheck against raw sqlite3 running the same statements.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck's store runs two short write transactions per cycle: read + lock (BEGIN
IMMEDIATE; SELECT the row; UPDATE its lock columns; COMMIT) and the fenced write that also
releases the lock (BEGIN IMMEDIATE; SELECT the row; INSERT OR REPLACE; COMMIT). The baseline
runs exactly those statements with sqlite3 on a connection opened the same way (WAL,
synchronous=NORMAL, autocommit) against the store's own table, decoding and re-encoding the
same record bytes with orjson, in the same process, in a database file of its own.

Async: coatcheck's SQLite store runs each call in a worker thread (``asyncio.to_thread``);
the async baseline runs each of its two transactions through ``asyncio.to_thread`` too.
Run: python -m bench.bench_sqlite
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from typing import Any

import orjson

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key

from .timing import Bench, Rounds, Row, compare, compare_async, cycles, report

N = cycles(400)
CONFIG = Config(gc_probability=0, cookie_secure=True, touch_threshold=60)
TABLE = "coatcheck_sessions"  # the store's default table
COLUMNS = "payload, expires_at, version, lock_token, lock_until"
TOKEN = "raw-token"


def data(size: int) -> dict[str, object]:
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def seed(path: str, size: int) -> tuple[str, int]:
    """A stored session of about ``size`` bytes; returns its id and record size."""
    store = open_store(f"sqlite:///{path}")
    s = SessionManager(store, CONFIG).start()
    s.update(data(size))
    s.write_close()
    stored = store.read(storage_key(s.id))
    store.close()
    return s.id, len(getattr(stored, "payload", b""))


class Raw:
    """The hand-written equivalent: the store's two transactions on one connection."""

    def __init__(self, path: str, key: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.key = key

    def read_lock(self) -> tuple[Any, ...]:
        conn, key = self.conn, self.key
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE key=?", (key,)).fetchone()
        conn.execute(
            f"UPDATE {TABLE} SET lock_token=?, lock_until=? WHERE key=?",
            (TOKEN, time.time() + 30, key),
        )
        conn.execute("COMMIT")
        assert row is not None
        return tuple(row)

    def write(self, row: tuple[Any, ...]) -> None:
        head, _, body = bytes(row[0]).partition(b"\n")
        decoded = orjson.loads(body)
        decoded["n"] += 1
        payload = head + b"\n" + orjson.dumps(decoded)
        conn, key = self.conn, self.key
        conn.execute("BEGIN IMMEDIATE")
        now = conn.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE key=?", (key,)).fetchone()
        assert now is not None and now[3] == TOKEN  # still ours: the fencing check
        conn.execute(
            f"INSERT OR REPLACE INTO {TABLE} (key, payload, expires_at, version, lock_token,"
            " lock_until) VALUES (?, ?, ?, ?, ?, ?)",
            (key, payload, time.time() + 1440, now[2] + 1, None, 0.0),
        )
        conn.execute("COMMIT")

    def cycle(self) -> None:
        self.write(self.read_lock())

    async def acycle(self) -> None:
        row = await asyncio.to_thread(self.read_lock)
        await asyncio.to_thread(self.write, row)


def run_sync(tmp: str, size: int) -> tuple[Rounds, int]:
    sid, nbytes = seed(f"{tmp}/sync{size}.db", size)
    store = open_store(f"sqlite:///{tmp}/sync{size}.db")
    manager = SessionManager(store, CONFIG)

    def session() -> None:
        s = manager.start(sid)
        s["n"] += 1
        s.write_close()

    raw_sid, _ = seed(f"{tmp}/raw{size}.db", size)
    raw = Raw(f"{tmp}/raw{size}.db", storage_key(raw_sid))
    rounds = compare({"session": session, "raw": raw.cycle}, N)
    raw.conn.close()
    store.close()
    return rounds, nbytes


async def run_async(tmp: str, size: int) -> tuple[Rounds, int]:
    sid, nbytes = seed(f"{tmp}/async{size}.db", size)
    store = open_async_store(f"sqlite:///{tmp}/async{size}.db")
    manager = AsyncSessionManager(store, CONFIG)

    async def session() -> None:
        s = await manager.start(sid)
        s["n"] += 1
        await s.write_close()

    raw_sid, _ = seed(f"{tmp}/araw{size}.db", size)
    raw = Raw(f"{tmp}/araw{size}.db", storage_key(raw_sid))
    rounds = await compare_async({"session": session, "raw": raw.acycle}, N)
    raw.conn.close()
    await store.close()
    return rounds, nbytes


LABELS = {"session": "coatcheck session", "raw": "raw sqlite3, same statements"}


def run() -> Bench:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (200, 4096):
            rounds, nbytes = run_sync(tmp, size)
            rows.append(Row("sync", nbytes, rounds))
        for size in (200, 4096):
            rounds, nbytes = asyncio.run(run_async(tmp, size))
            rows.append(Row("async (worker thread)", nbytes, rounds))
    return Bench("SQLite", LABELS, ("raw",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
