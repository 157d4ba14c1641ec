"""GC of a large expired backlog on the SQL stores: total time and the longest statement.

``python -m bench.gc_sql [postgresql|mysql|sqlite ...] [--rows N]`` (default: all three,
N = 1 000 000). For each store it fills a table of its own with N expired rows (deadlines
spread over the past day) and N/10 live ones, in bulk on the server side, then runs the
store's own ``gc()`` and reports:

- the total time and the number of statements GC ran;
- the longest single statement (each statement the store runs is timed on its way through
  the store's statement runner: for PostgreSQL and MySQL ``_execute``, for SQLite the
  thread's connection), and the median;
- while GC runs, another process runs session cycles (read with the lock, fenced write) on
  a live session: their median and longest time, against the same cycles measured just
  before GC, so a GC that blocks the request path shows (a process, not a thread, so GC's
  statement times never include waiting for the other's GIL);
- that GC deleted exactly the expired rows and every live row is still there and readable.

The servers are the tests' (``COATCHECK_TEST_POSTGRES``, ``COATCHECK_TEST_MYSQL``); SQLite
works in a temporary directory. The table is dropped afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from coatcheck import open_store
from coatcheck.locks import new_token
from coatcheck.stores.base import LockRequest, Store, Stored

from .common import namespaced

POSTGRES = os.environ.get("COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL = os.environ.get("COATCHECK_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
PAYLOAD = b"x" * 200  # a small session record
DAY = 86400.0
CHUNK = 100_000  # rows per bulk INSERT


@dataclass
class Statements:
    """Durations (seconds) of every statement the thread that started GC runs meanwhile."""

    thread: int | None = None
    times: list[float] = field(default_factory=list)

    def wrap(self, run: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                if self.thread == threading.get_ident():
                    self.times.append(time.perf_counter() - t)

        return timed


class _TimedSQLite:
    """Stands in for an sqlite3 connection, timing each ``execute`` (run to completion)."""

    def __init__(self, conn: Any, timer: Statements) -> None:
        self._conn = conn
        self.execute = timer.wrap(conn.execute)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


# --- filling ------------------------------------------------------------------------------


def fill_postgresql(url: str, expired: int, live: int, now: float) -> None:
    import psycopg

    from coatcheck.stores.postgresql import parse_url

    settings = parse_url(url)
    t = f'"{settings.table}"'
    rows = (
        f"INSERT INTO {t} (key, payload, expires_at, version)"
        " SELECT sha256(('gc' || i)::text::bytea), %(payload)s, %(base)s - (i %% 86400), 1"
        " FROM generate_series(%(first)s::bigint, %(last)s::bigint) i"
    )
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        for first, last, base in _ranges(expired, live, now):
            args = {"payload": PAYLOAD, "base": base, "first": first, "last": last}
            conn.execute(rows, args)
        conn.execute(f"VACUUM ANALYZE {t}")  # as autovacuum would have left a real table


def fill_mysql(url: str, expired: int, live: int, now: float) -> None:
    import pymysql

    from coatcheck.stores.mysql._config import parse

    settings = parse(url)
    t = f"`{settings.table}`"
    conn = pymysql.connect(**settings.connect_args())
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SELECT 1 FROM seq_1_to_1")  # MariaDB's Sequence engine
                sequence = True
            except pymysql.err.MySQLError:
                sequence = False
            for first, last, base in _ranges(expired, live, now):
                if sequence:
                    cur.execute(
                        f"INSERT INTO {t} (storage_key, payload, expires_at, version)"
                        " SELECT SHA2(CONCAT('gc', seq), 256), %s, %s - MOD(seq, 86400), 1"
                        f" FROM seq_{first}_to_{last}",
                        (PAYLOAD, base),
                    )
                else:  # MySQL: multi-row INSERTs built by the driver
                    cur.executemany(
                        f"INSERT INTO {t} (storage_key, payload, expires_at, version)"
                        " VALUES (SHA2(%s, 256), %s, %s, 1)",
                        [(f"gc{i}", PAYLOAD, base - i % 86400) for i in range(first, last + 1)],
                    )
            cur.execute(f"ANALYZE TABLE {t}")
            cur.fetchall()
    finally:
        conn.close()


def fill_sqlite(path: str, expired: int, live: int, now: float) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for first, last, base in _ranges(expired, live, now):
            conn.execute(
                "WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i < ?)"
                " INSERT INTO coatcheck_sessions (key, payload, expires_at, version)"
                " SELECT printf('%064x', i), ?, ? - (i % 86400), 1 FROM s",
                (first, last, PAYLOAD, base),
            )
        conn.execute("ANALYZE")
        # as a live database would be: its WAL checkpointed as it grew, not 100+ MB of the
        # bulk fill left for GC's first commit (or a request's) to copy into the file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


def _ranges(expired: int, live: int, now: float) -> Iterator[tuple[int, int, float]]:
    """(first, last, base deadline) chunks: expired rows first, then the live ones."""
    for first in range(1, expired + 1, CHUNK):
        yield first, min(first + CHUNK - 1, expired), now - 1.0
    for first in range(expired + 1, expired + live + 1, CHUNK):
        yield first, min(first + CHUNK - 1, expired + live), now + 2 * DAY


# --- the measurement ----------------------------------------------------------------------


def cycle(store: Store, key: str) -> float:
    """One session cycle at the store (read with the lock, fenced write): its seconds."""
    token = new_token()
    t = time.perf_counter()
    got = store.read(key, LockRequest(token, 30.0))
    assert isinstance(got, Stored), got
    store.write(key, got.payload, time.time() + DAY, token=token)
    return time.perf_counter() - t


def _cycles(url: str, key: str, stop: Any, out: Any) -> None:
    """In a process of its own (so GC's statement times never wait for this one's GIL):
    session cycles until ``stop`` is set, then their times, sent through ``out``."""
    store = open_store(url)
    times = []
    out.send("ready")
    while not stop.is_set():
        times.append(cycle(store, key))
    store.close()
    out.send(times)


@contextmanager
def traffic(url: str, key: str) -> Iterator[list[float]]:
    """Session cycles on ``key`` in another process while the block runs; their times."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    mine, theirs = context.Pipe()
    worker = context.Process(target=_cycles, args=(url, key, stop, theirs), daemon=True)
    worker.start()
    assert mine.recv() == "ready"
    times: list[float] = []
    try:
        yield times
    finally:
        stop.set()
        times.extend(mine.recv())
        worker.join()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def key_of(i: int, hashed: bool = True) -> str:
    """The storage key of the i-th filled row, as the bulk INSERTs compute it."""
    return hashlib.sha256(f"gc{i}".encode()).hexdigest() if hashed else f"{i:064x}"


def measure(
    name: str, url: str, fill: Callable[[int, int, float], None], rows: int, hashed: bool = True
) -> None:
    live = rows // 10
    now = time.time()
    store = open_store(url)
    store.create_schema()  # type: ignore[attr-defined]
    t = time.perf_counter()
    fill(rows, live, now)
    print(f"{name}: filled {rows} expired + {live} live rows in {time.perf_counter() - t:.0f}s")
    timer = Statements()
    if name == "sqlite":
        store.count()  # opens this thread's connection, which the store's GC uses
        opened = store._local.opened  # type: ignore[attr-defined]
        opened.conn = _TimedSQLite(opened.conn, timer)
    else:
        store._execute = timer.wrap(store._execute)  # type: ignore[attr-defined]
    probe = key_of(0, hashed)
    store.write(probe, PAYLOAD, now + 2 * DAY)
    before = [cycle(store, probe) for _ in range(200)]
    with traffic(url, probe) as during:
        timer.thread = threading.get_ident()
        t = time.perf_counter()
        removed = store.gc()
        total = time.perf_counter() - t
        timer.thread = None
    statements = timer.times[:]
    left = store.count()
    sample = [rows + 1, rows + live // 2, rows + live]
    kept = sum(isinstance(store.read(key_of(i, hashed)), Stored) for i in sample)
    gone = store.read(key_of(1, hashed)) is None
    store.close()
    print(f"  gc() removed {removed} rows in {total:.2f}s with {len(statements)} statements")
    if statements:
        longest, median = max(statements), statistics.median(statements)
        over = sum(t > 0.1 for t in statements)
        print(f"  longest statement {ms(longest)}, median {ms(median)}, over 100 ms: {over}")
        slowest = sorted(range(len(statements)), key=statements.__getitem__)[-3:][::-1]
        print("  slowest: " + ", ".join(f"#{i + 1} {ms(statements[i])}" for i in slowest))
    print(
        f"  session cycles during GC (another process): {len(during)},"
        f" median {ms(statistics.median(during))}, longest {ms(max(during))}"
        f" (before GC: median {ms(statistics.median(before))},"
        f" longest {ms(max(before))})"
    )
    ok = removed == rows and left == live + 1 and kept == len(sample) and gone
    print(f"  live rows after GC: {left - 1} of {live} {'(all kept)' if ok else '(WRONG)'}")
    if not ok:
        raise SystemExit(f"{name}: GC removed {removed} (expected {rows}), {left} rows left")


def run_postgresql(rows: int) -> None:
    from tests.support.postgresql import drop_namespace

    url = namespaced(POSTGRES, "table", "gc_")
    try:
        measure("postgresql", url, lambda e, lv, now: fill_postgresql(url, e, lv, now), rows)
    finally:
        drop_namespace(url)


def run_mysql(rows: int) -> None:
    from tests.support.mysql import drop_namespace

    url = namespaced(MYSQL, "table", "gc_")
    try:
        measure("mysql", url, lambda e, lv, now: fill_mysql(url, e, lv, now), rows)
    finally:
        drop_namespace(url)


def run_sqlite(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gc.db")
        fill = lambda e, lv, now: fill_sqlite(path, e, lv, now)  # noqa: E731
        measure("sqlite", f"sqlite:///{path}", fill, rows, hashed=False)


RUNS = {"postgresql": run_postgresql, "mysql": run_mysql, "sqlite": run_sqlite}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gc_sql", description=__doc__)
    parser.add_argument("stores", nargs="*", metavar="store", help=", ".join(RUNS))
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired rows (live: N/10)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.stores if name not in RUNS]
    if unknown:
        parser.error(f"unknown store(s): {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    for name in args.stores or list(RUNS):
        RUNS[name](args.rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
