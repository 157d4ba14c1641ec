"""copy_sessions of 100k sessions: SQLite file -> PostgreSQL, and Redis -> SQLite file.

The source is filled through ``store.write`` with real records (``coatcheck.record.pack``:
a header line with creation time and fingerprint, then about 200 bytes of JSON data), each
with its own expiry an hour or so ahead. Then ``copy_sessions(source, target)`` is timed:
one ``count()``, one scan, and per record a read from the source, a ``MUST_CREATE`` write to
the target and a second source read (the check that undoes a destroy or touch that raced the
copy). The target is checked afterwards to hold every record. Each run uses a fresh SQLite
file, PostgreSQL table and Redis key prefix, dropped at the end.

Run: python -m bench.migrate_100k [--sessions N] [--pair sqlite-postgresql|redis-sqlite]
(COATCHECK_TEST_POSTGRES / COATCHECK_TEST_REDIS override the servers).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import orjson

from coatcheck import open_store
from coatcheck.ids import storage_key
from coatcheck.record import Header, pack
from coatcheck.stores.base import Store
from coatcheck.wrappers import copy_sessions
from tests.support import postgresql as pg_support
from tests.support import redis as redis_support

from .common import namespaced

POSTGRES = os.environ.get("COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")


def record(i: int, now: float) -> bytes:
    header = Header(created=now - i % 3600, fingerprint=f"{i:064x}", user=f"user-{i}")
    data = {"user_id": i, "cart": [i, i + 1, i + 2], "csrf": f"{i:032x}", "flash": "x" * 100}
    return pack(header, orjson.dumps(data))


def fill(store: Store, n: int, threads: int = 4) -> float:
    """Write ``n`` records through ``store.write``; return the seconds it took."""
    now = time.time()

    def part(start: int) -> None:
        for i in range(start, n, threads):
            store.write(storage_key(f"bench-session-{i}"), record(i, now), now + 3600 + i % 600)

    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(part, range(threads)))
    return time.perf_counter() - began


def run(name: str, source_url: str, target_url: str, n: int) -> dict[str, float]:
    source, target = open_store(source_url), open_store(target_url)
    with source, target:
        filled = fill(source, n)
        print(f"{name}: filled {n} sessions in {filled:.1f}s", flush=True)
        last = [time.perf_counter()]

        def progress(done: int, total: int | None) -> None:
            if done % 20000 < 500 or done == total:
                print(f"  {done}/{total}  {time.perf_counter() - last[0]:.1f}s", flush=True)

        began = time.perf_counter()
        last[0] = began
        report = copy_sessions(source, target, progress=progress)
        wall = time.perf_counter() - began
        assert report.copied == n and report.skipped == 0, report
        assert target.count() == n
    rate = n / wall
    print(f"{name}: copied {report.copied} in {wall:.1f}s = {rate:,.0f} sessions/s", flush=True)
    return {"fill_s": filled, "copy_s": wall, "sessions_per_s": rate}


def pairs(tmp: str) -> dict[str, tuple[str, str, Callable[[], None]]]:
    pg = namespaced(POSTGRES, "table")
    redis = namespaced(REDIS, "prefix") + ":"
    return {
        "sqlite-postgresql": (
            f"sqlite:///{tmp}/source.db",
            pg,
            lambda: pg_support.drop_namespace(pg),
        ),
        "redis-sqlite": (
            redis,
            f"sqlite:///{tmp}/target.db",
            lambda: redis_support.drop_namespace(redis),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--pair", choices=("sqlite-postgresql", "redis-sqlite"), action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        chosen = pairs(tmp)
        for name in args.pair or list(chosen):
            source_url, target_url, drop = chosen[name]
            try:
                run(name, source_url, target_url, args.sessions)
            finally:
                drop()


if __name__ == "__main__":
    main()
