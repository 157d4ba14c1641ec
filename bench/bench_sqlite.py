"""Session cycle on SQLite: coatcheck against raw sqlite3, locked and unlocked.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck's store runs two statements per cycle, each its own transaction in autocommit
mode: read + lock (one ``UPDATE ... RETURNING`` that takes the lease and returns the row)
and the fenced write that also ends the lease (one ``UPDATE ... WHERE lock_token=? AND
lock_until>? RETURNING version``). Two raw baselines run with sqlite3 on a connection opened
the same way (WAL, synchronous=NORMAL, autocommit) against the store's own table, decoding
and re-encoding the same record bytes with orjson, in the same process, each in a database
file of its own:

- "raw sqlite3, same statements": the store's own two statements;
- "raw unlocked floor" (the floor the ratios use): ``SELECT`` the row, then an upsert
  (``INSERT ... ON CONFLICT DO UPDATE``) of the new record: no lock at all.

"coatcheck session, lock none" is the session cycle with ``lock_mode="none"``.

Async: coatcheck's SQLite store runs each call in a worker thread (``asyncio.to_thread``);
the async baselines run each of their two statements through ``asyncio.to_thread`` too.
Run: python -m bench.bench_sqlite
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from typing import Any

from coatcheck import AsyncSessionManager, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.sqlite import Statements

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
UNLOCKED = replace(CONFIG, lock_mode="none")  # the same cycle with no lock (last writer wins)
TABLE = "coatcheck_sessions"  # the store's default table


def connect(path: str) -> sqlite3.Connection:
    """A connection opened as the store opens its own (WAL, synchronous=NORMAL, autocommit)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class Floor:
    """The raw unlocked floor: SELECT the row, UPSERT it back; two statements, no lock."""

    def __init__(self, path: str, key: str) -> None:
        self.conn = connect(path)
        self.key = key

    def read(self) -> tuple[Any, ...]:
        sql = f"SELECT payload, expires_at, version FROM {TABLE} WHERE key=?"
        row = self.conn.execute(sql, (self.key,)).fetchone()
        assert row is not None
        return tuple(row)

    def write(self, row: tuple[Any, ...]) -> None:
        self.conn.execute(
            f"INSERT INTO {TABLE} (key, payload, expires_at, version) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET payload=excluded.payload,"
            " expires_at=excluded.expires_at, version=excluded.version",
            (self.key, bump(bytes(row[0])), time.time() + IDLE, row[2] + 1),
        )

    def cycle(self) -> None:
        self.write(self.read())

    async def acycle(self) -> None:
        row = await asyncio.to_thread(self.read)
        await asyncio.to_thread(self.write, row)


class Raw:
    """The hand-written equivalent: the store's own two statements, on one connection."""

    def __init__(self, path: str, key: str) -> None:
        self.conn = connect(path)
        self.key = key
        self.sql = Statements(TABLE)

    def read_lock(self) -> tuple[Any, ...]:
        now = time.time()
        args = (self.key, TOKEN, now + LEASE, now)
        rows = self.conn.execute(self.sql.lock, args).fetchall()
        assert rows  # the lease was free: taken, and the row returned
        return tuple(rows[0])

    def write(self, row: tuple[Any, ...]) -> None:
        now = time.time()
        args = (self.key, bump(bytes(row[0])), now + IDLE, TOKEN, now)
        assert self.conn.execute(self.sql.fenced, args).fetchall()  # fenced by our lease

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
    floor_url = f"sqlite:///{tmp}/floor{size}.db"
    floor = Floor(floor_url.removeprefix("sqlite:///"), storage_key(seed(floor_url, size)[0]))
    variants = {
        "session": session_cycle(SessionManager(store, CONFIG), sid),
        "none": session_cycle(SessionManager(store, UNLOCKED), seed(url, size)[0]),
        "store": store_cycle(store, storage_key(seed(url, size)[0])),
        "raw": raw.cycle,
        "floor": floor.cycle,
    }
    rounds = compare(variants, N)
    raw.conn.close()
    floor.conn.close()
    store.close()
    return Row("sync", nbytes, rounds)


async def run_async(tmp: str, size: int) -> Row:
    url = f"sqlite:///{tmp}/async{size}.db"
    sid, nbytes = seed(url, size)
    store = open_async_store(url)
    raw_url = f"sqlite:///{tmp}/araw{size}.db"
    raw = Raw(raw_url.removeprefix("sqlite:///"), storage_key(seed(raw_url, size)[0]))
    floor_url = f"sqlite:///{tmp}/afloor{size}.db"
    floor = Floor(floor_url.removeprefix("sqlite:///"), storage_key(seed(floor_url, size)[0]))
    variants = {
        "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
        "none": async_session_cycle(AsyncSessionManager(store, UNLOCKED), seed(url, size)[0]),
        "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
        "raw": raw.acycle,
        "floor": floor.acycle,
    }
    rounds = await compare_async(variants, N)
    raw.conn.close()
    floor.conn.close()
    await store.close()
    return Row("async (worker thread)", nbytes, rounds)


LABELS = {
    "session": "coatcheck session",
    "none": "coatcheck session, lock none",
    "store": "coatcheck store only",
    "raw": "raw sqlite3, same statements",
    "floor": "raw unlocked floor",
}


def run() -> Bench:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_sync(tmp, size) for size in (200, 4096)]
        rows += [asyncio.run(run_async(tmp, size)) for size in (200, 4096)]
    return Bench("SQLite", LABELS, ("floor",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
