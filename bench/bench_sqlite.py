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

from coatcheck import AsyncSessionManager, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key

from .common import (
    CONFIG,
    IDLE,
    LEASE,
    TOKEN,
    async_session_cycle,
    async_store_cycle,
    bump,
    seed,
    session_cycle,
    store_cycle,
)
from .timing import Bench, Row, compare, compare_async, cycles, report

N = cycles(400)
TABLE = "coatcheck_sessions"  # the store's default table
COLUMNS = "payload, expires_at, version, lock_token, lock_until"


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
            (TOKEN, time.time() + LEASE, key),
        )
        conn.execute("COMMIT")
        assert row is not None
        return tuple(row)

    def write(self, row: tuple[Any, ...]) -> None:
        payload = bump(bytes(row[0]))
        conn, key = self.conn, self.key
        conn.execute("BEGIN IMMEDIATE")
        now = conn.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE key=?", (key,)).fetchone()
        assert now is not None and now[3] == TOKEN  # still ours: the fencing check
        conn.execute(
            f"INSERT OR REPLACE INTO {TABLE} (key, payload, expires_at, version, lock_token,"
            " lock_until) VALUES (?, ?, ?, ?, ?, ?)",
            (key, payload, time.time() + IDLE, now[2] + 1, None, 0.0),
        )
        conn.execute("COMMIT")

    def cycle(self) -> None:
        self.write(self.read_lock())

    async def acycle(self) -> None:
        row = await asyncio.to_thread(self.read_lock)
        await asyncio.to_thread(self.write, row)


def run_sync(tmp: str, size: int) -> Row:
    url = f"sqlite:///{tmp}/sync{size}.db"
    sid, nbytes = seed(url, size)
    store = open_store(url)
    raw_url = f"sqlite:///{tmp}/raw{size}.db"
    raw = Raw(raw_url.removeprefix("sqlite:///"), storage_key(seed(raw_url, size)[0]))
    variants = {
        "session": session_cycle(SessionManager(store, CONFIG), sid),
        "store": store_cycle(store, storage_key(seed(url, size)[0])),
        "raw": raw.cycle,
    }
    rounds = compare(variants, N)
    raw.conn.close()
    store.close()
    return Row("sync", nbytes, rounds)


async def run_async(tmp: str, size: int) -> Row:
    url = f"sqlite:///{tmp}/async{size}.db"
    sid, nbytes = seed(url, size)
    store = open_async_store(url)
    raw_url = f"sqlite:///{tmp}/araw{size}.db"
    raw = Raw(raw_url.removeprefix("sqlite:///"), storage_key(seed(raw_url, size)[0]))
    variants = {
        "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
        "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
        "raw": raw.acycle,
    }
    rounds = await compare_async(variants, N)
    raw.conn.close()
    await store.close()
    return Row("async (worker thread)", nbytes, rounds)


LABELS = {
    "session": "coatcheck session",
    "store": "coatcheck store only",
    "raw": "raw sqlite3, same statements",
}


def run() -> Bench:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_sync(tmp, size) for size in (200, 4096)]
        rows += [asyncio.run(run_async(tmp, size)) for size in (200, 4096)]
    return Bench("SQLite", LABELS, ("raw",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
