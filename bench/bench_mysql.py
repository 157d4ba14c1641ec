"""Session cycle on MySQL/MariaDB: coatcheck against raw PyMySQL/aiomysql, same statements.

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
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiomysql
import orjson
import pymysql

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.mysql import drop_namespace
from coatcheck.stores.mysql_config import parse
from coatcheck.stores.mysql_ops import Sql

URL = os.environ.get("COATCHECK_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
N = int(os.environ.get("BENCH_N", "300"))
CONFIG = Config(gc_probability=0, cookie_secure=True, touch_threshold=60)
TOKEN = "raw-token"


def data(size: int) -> dict[str, object]:
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def median_us(fn: Callable[[], object]) -> float:
    """Median microseconds per call over ROUNDS rounds of N calls."""
    for _ in range(20):
        fn()  # warm-up: connections open, schema checked
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(N):
            fn()
        times.append((time.perf_counter() - t) / N * 1e6)
    return statistics.median(times)


async def median_us_async(fn: Callable[[], Awaitable[object]]) -> float:
    for _ in range(20):
        await fn()
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(N):
            await fn()
        times.append((time.perf_counter() - t) / N * 1e6)
    return statistics.median(times)


def table_url() -> str:
    sep = "&" if "?" in URL else "?"
    return f"{URL}{sep}table=bench_{uuid.uuid4().hex[:10]}"


def literal(conn: Any, value: object) -> str:
    # aiomysql 0.3.2 cannot escape bytes with PyMySQL 1.2.3+: hex them, as the store does
    return f"_binary X'{value.hex()}'" if isinstance(value, bytes) else str(conn.escape(value))


class Raw:
    """The hand-written equivalent: the store's two statements on one connection."""

    def __init__(self, url: str, key: str) -> None:
        self.q = Sql(parse(url).table)
        self.key = key
        self.update = self.q.update(fenced=True, versioned=False)

    def lock_args(self) -> dict[str, Any]:
        now = time.time()
        return {"key": self.key, "token": TOKEN, "now": now, "until": now + 30.0}

    def write_args(self, row: tuple[Any, ...]) -> dict[str, Any]:
        head, _, body = bytes(row[0]).partition(b"\n")
        decoded = orjson.loads(body)
        decoded["n"] += 1
        payload = head + b"\n" + orjson.dumps(decoded)
        return {
            "key": self.key,
            "payload": payload,
            "expires_at": time.time() + 1440,
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
            args = {k: literal(conn, v) for k, v in self.lock_args().items()}
            await cur.execute(self.q.lock_and_select % args)
            await cur.nextset()
            row = await cur.fetchone()
            assert row is not None and row[3]
            args = {k: literal(conn, v) for k, v in self.write_args(row).items()}
            assert await cur.execute(self.update % args) == 1


def seed(url: str, size: int) -> tuple[str, int]:
    """A stored session of about ``size`` bytes; returns its id and record size."""
    store = open_store(url)
    s = SessionManager(store, CONFIG).start()
    s.update(data(size))
    s.write_close()
    stored = store.read(storage_key(s.id))
    store.close()
    return s.id, len(getattr(stored, "payload", b""))


def run_sync(size: int) -> tuple[float, float, int]:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        manager = SessionManager(store, CONFIG)

        def coatcheck() -> None:
            s = manager.start(sid)
            s["n"] += 1
            s.write_close()

        ours = median_us(coatcheck)
        store.close()
        raw = Raw(url, storage_key(sid))
        conn = pymysql.connect(**parse(url).pymysql_args())
        try:
            theirs = median_us(lambda: raw.cycle(conn))
        finally:
            conn.close()
        return ours, theirs, nbytes
    finally:
        drop_namespace(url)


async def run_async(size: int) -> tuple[float, float, int]:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_async_store(url)
        manager = AsyncSessionManager(store, CONFIG)

        async def coatcheck() -> None:
            s = await manager.start(sid)
            s["n"] += 1
            await s.write_close()

        ours = await median_us_async(coatcheck)
        await store.close()
        raw = Raw(url, storage_key(sid))
        args = parse(url).aiomysql_args()
        args.pop("minsize"), args.pop("maxsize")
        conn = await aiomysql.connect(**args)
        try:
            theirs = await median_us_async(lambda: raw.acycle(conn))
        finally:
            conn.close()
        return ours, theirs, nbytes
    finally:
        drop_namespace(url)


def read_designs() -> list[tuple[str, float]]:
    """Raw PyMySQL read+lock of one ~4 KB session, three ways (then release, untimed)."""
    url = table_url()
    try:
        sid, _ = seed(url, 4096)
        q, key = Sql(parse(url).table), storage_key(sid)
        conn = pymysql.connect(**parse(url).pymysql_args())
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


def main() -> int:
    t0 = time.perf_counter()
    print(f"MySQL session cycle, median of {ROUNDS} rounds x {N} cycles (µs per cycle)\n")
    print("| mode | record bytes | coatcheck µs | raw driver µs | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    worst = 0.0
    for mode in ("sync", "async"):
        for size in (200, 4096):
            if mode == "sync":
                ours, theirs, nbytes = run_sync(size)
            else:
                ours, theirs, nbytes = asyncio.run(run_async(size))
            ratio = ours / theirs
            worst = max(worst, ratio)
            print(f"| {mode} | {nbytes} | {ours:.0f} | {theirs:.0f} | {ratio:.2f} |")
    print("\nRead + lock, raw PyMySQL (µs per read)\n")
    print("| design | µs |")
    print("| --- | ---: |")
    for name, us in read_designs():
        print(f"| {name} | {us:.0f} |")
    print(f"\nworst ratio {worst:.2f}; took {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
