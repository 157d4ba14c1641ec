"""Session cycle on MySQL/MariaDB: coatcheck against raw PyMySQL/asyncmy, locked and unlocked.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck sends two round trips per cycle: the read+lock batch and the fenced write that
also releases the lock. Two raw baselines (PyMySQL sync, asyncmy async, as the store) run on
one plain autocommit connection, decoding and re-encoding the same record bytes with orjson,
in the same process, each on a session of its own:

- "raw unlocked floor" (the floor the ratios use): a ``SELECT`` by key and an ``INSERT ...
  ON DUPLICATE KEY UPDATE`` of the same row, written out here: no lock at all, one durable
  commit, the least any session cycle against this table can cost;
- "raw, same statements": exactly the store's statements (taken from the store, so they
  cannot drift): what the store's SQL costs without coatcheck's Python around it.

A second table (``python -m bench.bench_mysql`` only) compares ways to read and lock in raw
PyMySQL, one round trip each: the store's batch with its MEMORY lease table, the same
statements with an InnoDB lease table (what Galera gets), the lease in the session row as
before (``UPDATE; SELECT``), and a plain ``SELECT`` with no lock. The last three
commit nothing or flush the redo log; the first commits a lease without a flush.
Run: python -m bench.bench_mysql (COATCHECK_TEST_MYSQL overrides the server).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import asyncmy
import pymysql
from pymysql.constants import CLIENT

from coatcheck import AsyncSessionManager, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.mysql._config import parse
from coatcheck.stores.mysql._statements import Sql
from tests.support.mysql import drop_namespace

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
from .timing import ROUNDS, Bench, Row, compare, compare_async, cycles, report

URL = os.environ.get("COATCHECK_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
N = cycles(200)


def table_url() -> str:
    return namespaced(URL, "table")


def connect_args(url: str) -> dict[str, Any]:
    """The store's own connection settings, with the one-round-trip batch enabled."""
    return {**parse(url).connect_args(), "client_flag": CLIENT.MULTI_STATEMENTS}


class Floor:
    """The unlocked floor: ``SELECT`` then ``INSERT ... ON DUPLICATE KEY UPDATE``, raw."""

    def __init__(self, url: str, key: str) -> None:
        t = f"`{parse(url).table}`"
        self.select = f"SELECT payload, expires_at, version FROM {t} WHERE storage_key = %(key)s"
        self.upsert = (
            f"INSERT INTO {t} (storage_key, payload, expires_at, version)"
            " VALUES (%(key)s, %(payload)s, %(expires_at)s, 1) ON DUPLICATE KEY UPDATE"
            " payload = %(payload)s, expires_at = %(expires_at)s, version = version + 1"
        )
        self.key = key

    def write_args(self, row: tuple[Any, ...]) -> dict[str, Any]:
        payload = bump(bytes(row[0]))
        return {"key": self.key, "payload": payload, "expires_at": time.time() + IDLE}

    def cycle(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(self.select, {"key": self.key})
            row = cur.fetchone()
            assert row is not None
            assert cur.execute(self.upsert, self.write_args(row)) == 2

    async def acycle(self, conn: Any) -> None:
        async with conn.cursor() as cur:
            await cur.execute(self.select, {"key": self.key})
            row = await cur.fetchone()
            assert row is not None
            assert await cur.execute(self.upsert, self.write_args(row)) == 2


class Raw:
    """The hand-written equivalent: the store's two statements on one connection."""

    def __init__(self, url: str, key: str) -> None:
        self.q = Sql(parse(url).table)
        self.key = key
        self.update, self.report = self.q.update(fenced=True, versioned=False)

    def lock_args(self) -> dict[str, Any]:
        now = time.time()
        return {"key": self.key, "token": TOKEN, "now": now, "until": now + LEASE}

    def write_args(self, row: tuple[Any, ...]) -> dict[str, Any]:
        return {
            "key": self.key,
            "payload": bump(bytes(row[0])),
            "expires_at": time.time() + IDLE,
            "token": TOKEN,
            "now": time.time(),
        }

    def cycle(self, conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(self.q.lock_and_select, self.lock_args())
            cur.nextset()
            row = cur.fetchone()
            assert row is not None and row[3]
            cur.execute(self.update, self.write_args(row))
            for _ in range(self.report):
                cur.nextset()
            assert cur.rowcount == 1
            while cur.nextset():
                pass

    async def acycle(self, conn: Any) -> None:
        async with conn.cursor() as cur:
            await cur.execute(self.q.lock_and_select, self.lock_args())
            await cur.nextset()
            row = await cur.fetchone()
            assert row is not None and row[3]
            await cur.execute(self.update, self.write_args(row))
            for _ in range(self.report):
                await cur.nextset()
            assert cur.rowcount == 1
            while await cur.nextset():
                pass


def run_sync(size: int) -> Row:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        raw = Raw(url, storage_key(seed(url, size)[0]))  # sessions of their own
        floor = Floor(url, storage_key(seed(url, size)[0]))
        conn = pymysql.connect(**connect_args(url))
        try:
            variants = {
                "session": session_cycle(SessionManager(store, CONFIG), sid),
                "store": store_cycle(store, storage_key(seed(url, size)[0])),
                "raw": lambda: raw.cycle(conn),
                "floor": lambda: floor.cycle(conn),
            }
            rounds = compare(variants, N)
        finally:
            conn.close()
            store.close()
        return Row("sync", nbytes, rounds)
    finally:
        drop_namespace(url)


async def run_async(size: int) -> Row:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_async_store(url)
        raw = Raw(url, storage_key(seed(url, size)[0]))
        floor = Floor(url, storage_key(seed(url, size)[0]))
        conn = await asyncmy.connect(**connect_args(url))
        try:
            variants = {
                "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
                "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
                "raw": lambda: raw.acycle(conn),
                "floor": lambda: floor.acycle(conn),
            }
            rounds = await compare_async(variants, N)
        finally:
            conn.close()
            await store.close()
        return Row("async", nbytes, rounds)
    finally:
        drop_namespace(url)


def read_designs() -> list[tuple[str, float]]:
    """Raw PyMySQL read + lock of one ~4 KB session (the same token re-taking its own lease
    each time), four ways, in alternating rounds; a plain SELECT for reference."""
    url = table_url()
    try:
        sid, _ = seed(url, 4096)
        q, key = Sql(parse(url).table), storage_key(sid)
        conn = pymysql.connect(**connect_args(url))
        t = f"`{q.table}`"
        innodb = Sql(parse(url).table + "_i")  # a copy whose lease table is InnoDB
        old = f"`{q.table}_o`"  # a copy with the lease in the session row, as before
        with conn.cursor() as cur:
            cur.execute(innodb.create_table)
            cur.execute(innodb.create_leases.replace("{engine}", "InnoDB"))
            cur.execute(f"INSERT INTO `{innodb.table}` SELECT * FROM {t}")
            cur.execute(f"CREATE TABLE {old} LIKE {t}")
            cur.execute(
                f"ALTER TABLE {old} ADD lock_token VARBINARY(255) NULL,"
                " ADD lock_until DOUBLE NOT NULL DEFAULT 0"
            )
            cur.execute(
                f"INSERT INTO {old} (storage_key, payload, expires_at, version) SELECT * FROM {t}"
            )
        in_row = (
            f"UPDATE {old} SET lock_until = %(until)s, lock_token = %(token)s"
            " WHERE storage_key = %(key)s AND expires_at > %(now)s"
            " AND (lock_token IS NULL OR lock_until <= %(now)s OR lock_token = %(token)s);"
            " SELECT payload, expires_at, version, lock_token = %(token)s"
            f" AND lock_until > %(now)s FROM {old} WHERE storage_key = %(key)s"
        )

        def batch(statement: str) -> Callable[[], object]:
            def lock() -> object:
                with conn.cursor() as cur:
                    cur.execute(statement, Raw(url, key).lock_args())
                    cur.nextset()
                    row = cur.fetchone()
                    assert row is not None and row[3]
                    return row

            return lock

        def select() -> object:
            with conn.cursor() as cur:
                cur.execute(q.select, {"key": key})
                return cur.fetchone()

        designs = {
            "lease in a MEMORY lease table: INSERT ... SELECT; SELECT (coatcheck)": batch(
                q.lock_and_select
            ),
            "the same statements, InnoDB lease table (Galera)": batch(innodb.lock_and_select),
            "lease in the session row: UPDATE; SELECT (before)": batch(in_row),
            "plain SELECT, no lock": select,
        }
        rounds = compare(designs, N)
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {old}, `{innodb.table}`, `{innodb.leases}`")
        conn.close()
        return [(name, statistics.median(times)) for name, times in rounds.items()]
    finally:
        drop_namespace(url)


LABELS = {
    "session": "coatcheck session",
    "store": "coatcheck store only",
    "raw": "raw PyMySQL / asyncmy, same statements",
    "floor": "raw unlocked floor (SELECT + UPSERT)",
}


def run() -> Bench:
    rows = [run_sync(size) for size in (200, 4096)]
    rows += [asyncio.run(run_async(size)) for size in (200, 4096)]
    return Bench("MySQL/MariaDB", LABELS, ("floor",), rows)


def main() -> int:
    report(run())
    print(f"Read + lock, raw PyMySQL (median µs per read, {ROUNDS} alternating rounds)\n")
    print("| design | µs |")
    print("| --- | ---: |")
    for name, us in read_designs():
        print(f"| {name} | {us:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
