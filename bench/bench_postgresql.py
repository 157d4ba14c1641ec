"""Session cycle on PostgreSQL: coatcheck against raw psycopg, locked and unlocked.

coatcheck sends two statements per cycle: the read+lock statement and the fenced UPDATE that
also releases the lock. Two raw psycopg baselines run on one plain autocommit connection
(binary parameters, as the store), re-encoding the same record bytes with orjson, in the
same process, each on a session of its own:

- "raw unlocked floor" (the floor the ratios use): a ``SELECT`` by key and an ``INSERT ...
  ON CONFLICT DO UPDATE`` of the same row, written out here: no lock at all, one durable
  commit, the least any session cycle against this table can cost;
- "raw, same statements": exactly the store's two statements (taken from the store, so they
  cannot drift): what the store's SQL costs without coatcheck's Python around it.

The store goes through its psycopg_pool pool; the baselines do not.
Run: python -m bench.bench_postgresql (COATCHECK_TEST_POSTGRES overrides the server).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import psycopg

from coatcheck import AsyncSessionManager, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.postgresql import Statements, parse_url
from tests.support.postgresql import drop_namespace

from .common import (
    CONFIG,
    IDLE,
    LEASE,
    TOKEN,
    async_session_cycle,
    async_store_cycle,
    bump,
    namespaced,
    seed,
    session_cycle,
    store_cycle,
)
from .timing import Bench, Row, compare, compare_async, cycles, report

URL = os.environ.get("COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
N = cycles(100)


class Floor:
    """The unlocked floor: ``SELECT`` then ``UPSERT`` of the same row, raw psycopg."""

    def __init__(self, url: str, key: str) -> None:
        t = f'"{parse_url(url).table}"'
        self.select = f"SELECT payload, expires_at, version FROM {t} WHERE key = %b"
        self.upsert = (
            f"INSERT INTO {t} AS s (key, payload, expires_at, version)"
            " VALUES (%(key)b, %(payload)b, %(exp)b, 1) ON CONFLICT (key) DO UPDATE SET"
            " payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at,"
            " version = s.version + 1 RETURNING version"
        )
        self.key = bytes.fromhex(key)

    def write_params(self, row: tuple[Any, ...]) -> dict[str, Any]:
        return {"key": self.key, "payload": bump(bytes(row[0])), "exp": time.time() + IDLE}

    def cycle(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(self.select, (self.key,), binary=True).fetchone()
        assert row is not None
        assert conn.execute(self.upsert, self.write_params(row), binary=True).fetchone()

    async def acycle(self, conn: psycopg.AsyncConnection[Any]) -> None:
        row = await (await conn.execute(self.select, (self.key,), binary=True)).fetchone()
        assert row is not None
        cur = await conn.execute(self.upsert, self.write_params(row), binary=True)
        assert await cur.fetchone()


class Raw:
    """The hand-written equivalent: the store's two statements on one connection."""

    def __init__(self, url: str, key: str) -> None:
        self.q = Statements(parse_url(url).table)
        self.update = self.q.update[(True, False)]  # fenced by the token, no version check
        self.key = bytes.fromhex(key)

    def lock_params(self) -> dict[str, Any]:
        return {"key": self.key, "tok": TOKEN, "lease": LEASE, "now": time.time()}

    def write_params(self, row: tuple[Any, ...]) -> dict[str, Any]:
        payload = bump(bytes(row[0]))
        exp, now = time.time() + IDLE, time.time()
        return {"key": self.key, "payload": payload, "exp": exp, "tok": TOKEN, "now": now}

    def cycle(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(self.q.lock, self.lock_params(), binary=True).fetchone()
        assert row is not None and row[3]
        assert conn.execute(self.update, self.write_params(row), binary=True).fetchone()

    async def acycle(self, conn: psycopg.AsyncConnection[Any]) -> None:
        row = await (await conn.execute(self.q.lock, self.lock_params(), binary=True)).fetchone()
        assert row is not None and row[3]
        cur = await conn.execute(self.update, self.write_params(row), binary=True)
        assert await cur.fetchone()


def run_sync(size: int) -> Row:
    url = namespaced(URL, "table")
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        raw = Raw(url, storage_key(seed(url, size)[0]))  # sessions of their own
        floor = Floor(url, storage_key(seed(url, size)[0]))
        with psycopg.connect(parse_url(url).conninfo, autocommit=True) as conn:
            variants = {
                "session": session_cycle(SessionManager(store, CONFIG), sid),
                "store": store_cycle(store, storage_key(seed(url, size)[0])),
                "raw": lambda: raw.cycle(conn),
                "floor": lambda: floor.cycle(conn),
            }
            rounds = compare(variants, N)
        store.close()
        return Row("sync", nbytes, rounds)
    finally:
        drop_namespace(url)


async def run_async(size: int) -> Row:
    url = namespaced(URL, "table")
    try:
        sid, nbytes = seed(url, size)
        store = open_async_store(url)
        raw = Raw(url, storage_key(seed(url, size)[0]))
        floor = Floor(url, storage_key(seed(url, size)[0]))
        conn = await psycopg.AsyncConnection.connect(parse_url(url).conninfo, autocommit=True)
        async with conn:
            variants = {
                "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
                "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
                "raw": lambda: raw.acycle(conn),
                "floor": lambda: floor.acycle(conn),
            }
            rounds = await compare_async(variants, N)
        await store.close()
        return Row("async", nbytes, rounds)
    finally:
        drop_namespace(url)


LABELS = {
    "session": "coatcheck session",
    "store": "coatcheck store only",
    "raw": "raw psycopg, same 2 statements",
    "floor": "raw unlocked floor (SELECT + UPSERT)",
}


def run() -> Bench:
    rows = [run_sync(size) for size in (200, 4096)]
    rows += [asyncio.run(run_async(size)) for size in (200, 4096)]
    return Bench("PostgreSQL", LABELS, ("floor",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
