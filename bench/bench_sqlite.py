"""Session cycle on SQLite: coatcheck against raw sqlite3 running the same statements.

One cycle = load an existing session (with the exclusive lock), increment a counter, save.
coatcheck issues, per cycle: BEGIN IMMEDIATE; SELECT row; UPDATE lock columns; COMMIT
(read + lock), then BEGIN IMMEDIATE; SELECT row; INSERT OR REPLACE; COMMIT (fenced write +
release). The baseline runs exactly those statements with sqlite3 and orjson, in the same
process, on a database file of its own. Run: python -m bench.bench_sqlite
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable

import orjson

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
N = int(os.environ.get("BENCH_N", "400"))


def payload(size: int) -> dict[str, object]:
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def best_of(fn: Callable[[], None]) -> float:
    """Median microseconds per cycle over ROUNDS rounds of N cycles."""
    fn()  # warm-up
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(N):
            fn()
        times.append((time.perf_counter() - t) / N * 1e6)
    return statistics.median(times)


async def best_of_async(fn: Callable[[], Awaitable[None]]) -> float:
    await fn()
    times = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for _ in range(N):
            await fn()
        times.append((time.perf_counter() - t) / N * 1e6)
    return statistics.median(times)


def raw_cycle(conn: sqlite3.Connection, key: str) -> None:
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute(
        "SELECT payload, expires_at, version, lock_token, lock_until FROM t WHERE key=?", (key,)
    ).fetchone()
    conn.execute("UPDATE t SET lock_token=?, lock_until=? WHERE key=?", ("tok", now + 30, key))
    conn.execute("COMMIT")
    head, _, body = bytes(row[0]).partition(b"\n")
    data = orjson.loads(body)
    data["n"] += 1
    new = head + b"\n" + orjson.dumps(data)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "SELECT payload, expires_at, version, lock_token, lock_until FROM t WHERE key=?", (key,)
    ).fetchone()
    conn.execute(
        "INSERT OR REPLACE INTO t (key, payload, expires_at, version, lock_token, lock_until)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (key, new, now + 1440, row[2] + 1, None, 0),
    )
    conn.execute("COMMIT")


def raw_setup(path: str, size: int) -> tuple[sqlite3.Connection, str]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE t (key TEXT PRIMARY KEY NOT NULL, payload BLOB NOT NULL, expires_at REAL"
        " NOT NULL, version INTEGER NOT NULL, lock_token TEXT, lock_until REAL NOT NULL DEFAULT 0)"
        " WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX t_expires ON t (expires_at)")
    key = "k" * 64
    body = b'{"v":1,"c":1.0}\n' + orjson.dumps(payload(size))
    conn.execute("INSERT INTO t VALUES (?, ?, ?, 1, NULL, 0)", (key, body, time.time() + 1e6))
    return conn, key


def main() -> None:
    config = Config(gc_probability=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (200, 4096):
            conn, key = raw_setup(f"{tmp}/raw{size}.db", size)
            raw = best_of(lambda: raw_cycle(conn, key))  # noqa: B023

            manager = SessionManager(open_store(f"sqlite:///{tmp}/cc{size}.db"), config)
            with manager.start() as s:
                s.update(payload(size))
            sid = s.id

            def cycle() -> None:
                with manager.start(sid) as session:  # noqa: B023
                    session["n"] += 1

            ours = best_of(cycle)
            rows.append(("sync", size, ours, raw))

            amanager = AsyncSessionManager(
                open_async_store(f"sqlite:///{tmp}/acc{size}.db"), config
            )

            async def run_async() -> float:
                s = await amanager.start()  # noqa: B023
                s.update(payload(size))  # noqa: B023
                await s.write_close()

                async def acycle() -> None:
                    session = await amanager.start(s.id)  # noqa: B023
                    session["n"] += 1
                    await session.write_close()

                return await best_of_async(acycle)

            rows.append(("async (worker thread)", size, asyncio.run(run_async()), raw))
    print(
        f"SQLite session cycle, median of {ROUNDS} rounds x {N} cycles,"
        f" python {sys.version.split()[0]}"
    )
    print()
    print("| mode | payload | coatcheck us/cycle | raw sqlite3 us/cycle | ratio |")
    print("|---|---|---|---|---|")
    for mode, size, ours, raw in rows:
        print(f"| {mode} | ~{size} B | {ours:.1f} | {raw:.1f} | {ours / raw:.2f}x |")


if __name__ == "__main__":
    main()
