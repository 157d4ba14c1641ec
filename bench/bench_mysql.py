"""Session cycle on MySQL/MariaDB: coatcheck against raw PyMySQL/asyncmy, same statements.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck sends two round trips per cycle: the read+lock batch (UPDATE; SELECT) and the
fenced UPDATE that also releases the lock. The baseline sends exactly those statements
(taken from the store, so they cannot drift) on one plain connection, decoding and
re-encoding the same record bytes with orjson, in the same process, on a table of its own.

A second table compares ways to read and lock in raw PyMySQL: the one-round-trip batch
coatcheck uses, the same two statements as two round trips, and a ``SELECT ... FOR UPDATE``
transaction. Run: python -m bench.bench_mysql (COATCHECK_TEST_MYSQL overrides the server).
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
from .timing import Bench, Row, compare, compare_async, cycles, report

URL = os.environ.get("COATCHECK_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
N = cycles(200)


def median_us(fn: Callable[[], object]) -> float:
    """Median µs per call of ``fn`` alone (the read-design table has no coatcheck side)."""
    return statistics.median(compare({"fn": fn}, N)["fn"])


def table_url() -> str:
    return namespaced(URL, "table")


def connect_args(url: str) -> dict[str, Any]:
    """The store's own connection settings, with the one-round-trip batch enabled."""
    return {**parse(url).connect_args(), "client_flag": CLIENT.MULTI_STATEMENTS}


class Raw:
    """The hand-written equivalent: the store's two statements on one connection."""

    def __init__(self, url: str, key: str) -> None:
        self.q = Sql(parse(url).table)
        self.key = key
        self.update = self.q.update(fenced=True, versioned=False)

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
            assert cur.execute(self.update, self.write_args(row)) == 1

    async def acycle(self, conn: Any) -> None:
        async with conn.cursor() as cur:
            await cur.execute(self.q.lock_and_select, self.lock_args())
            await cur.nextset()
            row = await cur.fetchone()
            assert row is not None and row[3]
            assert await cur.execute(self.update, self.write_args(row)) == 1


def run_sync(size: int) -> Row:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        raw = Raw(url, storage_key(seed(url, size)[0]))  # sessions of their own
        conn = pymysql.connect(**connect_args(url))
        try:
            variants = {
                "session": session_cycle(SessionManager(store, CONFIG), sid),
                "store": store_cycle(store, storage_key(seed(url, size)[0])),
                "raw": lambda: raw.cycle(conn),
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
        conn = await asyncmy.connect(**connect_args(url))
        try:
            variants = {
                "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
                "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
                "raw": lambda: raw.acycle(conn),
            }
            rounds = await compare_async(variants, N)
        finally:
            conn.close()
            await store.close()
        return Row("async", nbytes, rounds)
    finally:
        drop_namespace(url)


def read_designs() -> list[tuple[str, float]]:
    """Raw PyMySQL read+lock of one ~4 KB session, three ways (then release, untimed)."""
    url = table_url()
    try:
        sid, _ = seed(url, 4096)
        q, key = Sql(parse(url).table), storage_key(sid)
        conn = pymysql.connect(**connect_args(url))
        update, select = q.lock_and_select.split(";", 1)
        t = f"`{q.table}`"

        def batch() -> object:
            with conn.cursor() as cur:
                cur.execute(q.lock_and_select, Raw(url, key).lock_args())
                cur.nextset()
                return cur.fetchone()

        def two_trips() -> object:
            args = Raw(url, key).lock_args()
            with conn.cursor() as cur:
                cur.execute(update, args)
                cur.execute(select, args)
                return cur.fetchone()

        def for_update() -> object:
            now = time.time()
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                cur.execute(
                    f"SELECT payload, expires_at, version, lock_token, lock_until FROM {t}"
                    " WHERE storage_key = %s FOR UPDATE",
                    (key,),
                )
                row = cur.fetchone()
                cur.execute(
                    f"UPDATE {t} SET lock_token = %s, lock_until = %s WHERE storage_key = %s",
                    (TOKEN, now + 30, key),
                )
                cur.execute("COMMIT")
                return row

        results = [
            ("UPDATE; SELECT batch, 1 round trip (coatcheck)", median_us(batch)),
            ("UPDATE then SELECT, 2 round trips", median_us(two_trips)),
            ("BEGIN; SELECT ... FOR UPDATE; UPDATE; COMMIT, 4 round trips", median_us(for_update)),
        ]
        conn.close()
        return results
    finally:
        drop_namespace(url)


LABELS = {
    "session": "coatcheck session",
    "store": "coatcheck store only",
    "raw": "raw PyMySQL / asyncmy, same statements",
}


def run() -> Bench:
    rows = [run_sync(size) for size in (200, 4096)]
    rows += [asyncio.run(run_async(size)) for size in (200, 4096)]
    return Bench("MySQL/MariaDB", LABELS, ("raw",), rows)


def main() -> int:
    report(run())
    print("Read + lock, raw PyMySQL (µs per read)\n")
    print("| design | µs |")
    print("| --- | ---: |")
    for name, us in read_designs():
        print(f"| {name} | {us:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
