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
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psycopg

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.postgresql import Statements, drop_namespace, parse_url

URL = os.environ.get("COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
N = int(os.environ.get("BENCH_N", "100"))
CONFIG = Config(gc_probability=0, cookie_secure=True, touch_threshold=60)


def data(size: int) -> dict[str, object]:
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def paired(ours: Callable[[], None], theirs: Callable[[], None]) -> tuple[float, float, float]:
    """Median µs per cycle of each, and the median of per-round ratios.

    Rounds alternate between the two, so load from elsewhere on the machine hits both
    alike; the ratio of each pair of neighbouring rounds is what the table reports.
    """
    for _ in range(20):  # warm-up: connections open, statements prepared
        ours()
        theirs()
    a, b = [], []
    for _ in range(ROUNDS):
        for fn, out in ((ours, a), (theirs, b)):
            t = time.perf_counter()
            for _ in range(N):
                fn()
            out.append((time.perf_counter() - t) / N * 1e6)
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return statistics.median(a), statistics.median(b), statistics.median(ratios)


async def paired_async(
    ours: Callable[[], Awaitable[None]], theirs: Callable[[], Awaitable[None]]
) -> tuple[float, float, float]:
    for _ in range(20):
        await ours()
        await theirs()
    a, b = [], []
    for _ in range(ROUNDS):
        for fn, out in ((ours, a), (theirs, b)):
            t = time.perf_counter()
            for _ in range(N):
                await fn()
            out.append((time.perf_counter() - t) / N * 1e6)
    ratios = [x / y for x, y in zip(a, b, strict=True)]
    return statistics.median(a), statistics.median(b), statistics.median(ratios)


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


def run_sync(size: int) -> tuple[float, float, float, int]:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        manager = SessionManager(store, CONFIG)

        def coatcheck() -> None:
            s = manager.start(sid)
            s["n"] += 1
            s.write_close()

        raw = Raw(url, storage_key(sid))
        with psycopg.connect(parse_url(url).conninfo, autocommit=True) as conn:
            result = paired(coatcheck, lambda: raw.cycle(conn))
        store.close()
        return (*result, nbytes)
    finally:
        drop_namespace(url)


async def run_async(size: int) -> tuple[float, float, float, int]:
    url = table_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_async_store(url)
        manager = AsyncSessionManager(store, CONFIG)

        async def coatcheck() -> None:
            s = await manager.start(sid)
            s["n"] += 1
            await s.write_close()

        raw = Raw(url, storage_key(sid))
        conn = await psycopg.AsyncConnection.connect(parse_url(url).conninfo, autocommit=True)
        async with conn:
            result = await paired_async(coatcheck, lambda: raw.acycle(conn))
        await store.close()
        return (*result, nbytes)
    finally:
        drop_namespace(url)


def main() -> int:
    t0 = time.perf_counter()
    print(f"PostgreSQL session cycle: {ROUNDS} alternating rounds x {N} cycles, medians\n")
    print("| mode | record bytes | coatcheck µs/op | raw psycopg µs/op | ratio (median of pairs) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    worst = 0.0
    for mode in ("sync", "async"):
        for size in (200, 4096):
            if mode == "sync":
                ours, theirs, ratio, nbytes = run_sync(size)
            else:
                ours, theirs, ratio, nbytes = asyncio.run(run_async(size))
            worst = max(worst, ratio)
            print(f"| {mode} | {nbytes} | {ours:.0f} | {theirs:.0f} | {ratio:.2f} |")
    print(f"\nworst ratio {worst:.2f} (target <= 1.25); took {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
