"""Session cycle on PostgreSQL: coatcheck against raw psycopg running the same statements.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck sends two statements per cycle: the read+lock CTE and the fenced UPDATE that also
releases the lock. The baseline sends exactly those two statements (taken from the store,
so they cannot drift) with psycopg on one plain connection, decodes and re-encodes the same
record bytes with orjson, in the same process, on a table of its own.
Run: python -m bench.bench_postgresql (COATCHECK_TEST_POSTGRES overrides the server).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any

import orjson
import psycopg

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.postgresql import Statements, drop_namespace, parse_url

from .timing import Bench, Rounds, Row, compare, compare_async, cycles, report

URL = os.environ.get("COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
N = cycles(100)
CONFIG = Config(gc_probability=0, cookie_secure=True, touch_threshold=60)


def data(size: int) -> dict[str, object]:
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def table_url() -> str:
    sep = "&" if "?" in URL else "?"
    return f"{URL}{sep}table=bench_{uuid.uuid4().hex[:10]}"


class Raw:
    """The hand-written equivalent: the store's two statements on one connection."""

    def __init__(self, url: str, key: str) -> None:
        self.q = Statements(parse_url(url).table)
        self.key = bytes.fromhex(key)

    def lock_params(self) -> dict[str, Any]:
        return {"key": self.key, "tok": "raw-token", "lease": 30.0, "now": time.time()}

    def new_payload(self, row: tuple[Any, ...]) -> dict[str, Any]:
        head, _, body = bytes(row[0]).partition(b"\n")
        decoded = orjson.loads(body)
        decoded["n"] += 1
        payload = head + b"\n" + orjson.dumps(decoded)
        return {"key": self.key, "payload": payload, "exp": time.time() + 1440, "tok": "raw-token"}

    def cycle(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute(self.q.lock, self.lock_params(), binary=True).fetchone()
        assert row is not None and row[3]
        update = self.q.update[(True, False)]
        assert conn.execute(update, self.new_payload(row), binary=True).fetchone()

    async def acycle(self, conn: psycopg.AsyncConnection[Any]) -> None:
        row = await (await conn.execute(self.q.lock, self.lock_params(), binary=True)).fetchone()
        assert row is not None and row[3]
        update = self.q.update[(True, False)]
        assert await (await conn.execute(update, self.new_payload(row), binary=True)).fetchone()


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
        with psycopg.connect(parse_url(url).conninfo, autocommit=True) as conn:
            rounds = compare({"session": session, "raw": lambda: raw.cycle(conn)}, N)
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
        conn = await psycopg.AsyncConnection.connect(parse_url(url).conninfo, autocommit=True)
        async with conn:
            rounds = await compare_async({"session": session, "raw": lambda: raw.acycle(conn)}, N)
        await store.close()
        return rounds, nbytes
    finally:
        drop_namespace(url)


LABELS = {"session": "coatcheck session", "raw": "raw psycopg, same 2 statements"}


def run() -> Bench:
    rows = []
    for size in (200, 4096):
        rounds, nbytes = run_sync(size)
        rows.append(Row("sync", nbytes, rounds))
    for size in (200, 4096):
        rounds, nbytes = asyncio.run(run_async(size))
        rows.append(Row("async", nbytes, rounds))
    return Bench("PostgreSQL", LABELS, ("raw",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
