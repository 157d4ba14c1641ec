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
from collections.abc import Callable
from typing import Any

import aiomysql
import orjson
import pymysql

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.mysql import drop_namespace
from coatcheck.stores.mysql_config import parse
from coatcheck.stores.mysql_ops import Sql

from .timing import Bench, Rounds, Row, compare, compare_async, cycles, report

URL = os.environ.get("COATCHECK_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
N = cycles(200)
CONFIG = Config(gc_probability=0, cookie_secure=True, touch_threshold=60)
TOKEN = "raw-token"


def data(size: int) -> dict[str, object]:
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def median_us(fn: Callable[[], object]) -> float:
    """Median µs per call of ``fn`` alone (the read-design table has no coatcheck side)."""
    return statistics.median(compare({"fn": fn}, N)["fn"])


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


def run_sync(size: int) -> tuple[Rounds, int]:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        manager = SessionManager(store, CONFIG)

        def session() -> None:
            s = manager.start(sid)
            s["n"] += 1
            s.write_close()

        raw = Raw(url, storage_key(seed(url, size)[0]))  # a session of its own
        conn = pymysql.connect(**parse(url).pymysql_args())
        try:
            rounds = compare({"session": session, "raw": lambda: raw.cycle(conn)}, N)
        finally:
            conn.close()
            store.close()
        return rounds, nbytes
    finally:
        drop_namespace(url)


async def run_async(size: int) -> tuple[Rounds, int]:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_async_store(url)
        manager = AsyncSessionManager(store, CONFIG)

        async def session() -> None:
            s = await manager.start(sid)
            s["n"] += 1
            await s.write_close()

        raw = Raw(url, storage_key(seed(url, size)[0]))
        args = parse(url).aiomysql_args()
        args.pop("minsize"), args.pop("maxsize")
        conn = await aiomysql.connect(**args)
        try:
            rounds = await compare_async({"session": session, "raw": lambda: raw.acycle(conn)}, N)
        finally:
            conn.close()
            await store.close()
        return rounds, nbytes
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


LABELS = {"session": "coatcheck session", "raw": "raw PyMySQL / aiomysql, same statements"}


def run() -> Bench:
    rows = []
    for size in (200, 4096):
        rounds, nbytes = run_sync(size)
        rows.append(Row("sync", nbytes, rounds))
    for size in (200, 4096):
        rounds, nbytes = asyncio.run(run_async(size))
        rows.append(Row("async", nbytes, rounds))
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
