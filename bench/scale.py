"""The session cycle's tail latency with 10k, 100k and 1M stored sessions.

``python -m bench.scale [sqlite|postgresql|mysql|redis ...]``. For each store, three
namespaces are filled side by side: a table each (SQL stores) or a Redis database each
(13, 14, 15, with a key prefix of the run's own), holding 10k, 100k and 1M live sessions.
``SESSIONS`` (50) of them are real coatcheck sessions; the rest are filled in bulk on the
server (one ``INSERT ... SELECT`` over a series per chunk, a Lua loop per 10k keys in Redis),
with the same record bytes, keys spread evenly over the key space and inserted in key order
(in order, so that filling a million rows takes seconds, not minutes).

Then rounds alternate between the three sizes: each round runs ``BENCH_N`` session cycles
(exclusive lock, ``n += 1``, save; bench/common.py) over the real sessions in turn, timing
each cycle. The table gives p50 and p99 per size over all rounds, and p99 at 1M / p99 at 10k
(the target: <= 1.1) over every cycle, with the spread of the same ratio round by round.
Everything is dropped afterwards.
``BENCH_QUICK=1`` uses 1k, 10k and 100k.

GC of 1M expired rows is bench/gc_sql.py's (run by bench/all.py when it is there).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coatcheck import SessionManager, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.base import Stored
from tests.services import MYSQL_URL, POSTGRES_URL, REDIS_URL

from . import targets
from .common import CONFIG, IDLE, seed
from .targets import Target
from .timing import QUICK, ROUNDS, cycles, fmt, iqr, percentile, table

LEVELS = (1_000, 10_000, 100_000) if QUICK else (10_000, 100_000, 1_000_000)
SESSIONS = 50
N = cycles(120)
REDIS_DBS = (13, 14, 15)
CHUNK = 100_000
STORES = ("sqlite", "postgresql", "mysql", "redis")
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB", "redis": "Redis"}


@dataclass
class Level:
    """One namespace of ``size`` stored sessions."""

    size: int
    url: str
    sids: list[str] = field(default_factory=list)
    payload: bytes = b""
    samples: list[float] = field(default_factory=list)  # µs per cycle, every cycle
    p99s: list[float] = field(default_factory=list)  # per round


def _suffix(tag: str) -> str:
    """49 hex characters, different per namespace: the tail of every filler key."""
    return hashlib.sha256(tag.encode()).hexdigest()[:49]


def _stride(count: int) -> int:
    return (1 << 60) // max(1, count)


def _seed_real(level: Level) -> None:
    for _ in range(SESSIONS):
        sid, _ = seed(level.url, 200)
        level.sids.append(sid)
    store = open_store(level.url)
    try:
        got = store.read(storage_key(level.sids[0]))
        assert isinstance(got, Stored)
        level.payload = got.payload
    finally:
        store.close()


# --- filling, per store ---------------------------------------------------------------------


def fill_sqlite(level: Level, count: int) -> None:
    import sqlite3

    path = level.url.removeprefix("sqlite:///").split("?", 1)[0]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
            " INSERT INTO coatcheck_sessions (key, payload, expires_at, version)"
            " SELECT printf('%015x', i * ?) || ?, ?, ?, 1 FROM n",
            (count, _stride(count), _suffix(level.url), level.payload, time.time() + IDLE),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def fill_postgresql(level: Level, count: int) -> None:
    import psycopg

    from coatcheck.stores.postgresql import parse_url

    settings = parse_url(level.url)
    with psycopg.connect(settings.conninfo, autocommit=True) as conn:
        for first in range(1, count + 1, CHUNK):
            last = min(count, first + CHUNK - 1)
            conn.execute(
                f'INSERT INTO "{settings.table}" (key, payload, expires_at, version)'
                " SELECT decode(lpad(to_hex(i * %s::bigint), 15, '0') || %s, 'hex'), %s, %s, 1"
                " FROM generate_series(%s::bigint, %s::bigint) AS i",
                (
                    _stride(count),
                    _suffix(level.url),
                    level.payload,
                    time.time() + IDLE,
                    first,
                    last,
                ),
            )
        conn.execute(f'ANALYZE "{settings.table}"')


def fill_mysql(level: Level, count: int) -> None:
    import pymysql

    from coatcheck.stores.mysql._config import parse

    settings = parse(level.url)
    conn = pymysql.connect(**settings.connect_args())
    try:
        with conn.cursor() as cur:
            for first in range(1, count + 1, CHUNK):
                last = min(count, first + CHUNK - 1)
                cur.execute(
                    f"INSERT INTO `{settings.table}` (storage_key, payload, expires_at, version)"
                    " SELECT CONCAT(LPAD(LOWER(HEX(seq * %s)), 15, '0'), %s), %s, %s, 1"
                    f" FROM seq_{first}_to_{last}",
                    (_stride(count), _suffix(level.url), level.payload, time.time() + IDLE),
                )
            conn.commit()
            cur.execute(f"ANALYZE TABLE `{settings.table}`")
    finally:
        conn.close()


# KEYS: the prefix. ARGV: first, last, salt, payload, deadline (s), ttl ms.
REDIS_FILL = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local h = redis.sha1hex(ARGV[3] .. i) .. redis.sha1hex(i .. ARGV[3])
  local k = KEYS[1] .. '{' .. string.sub(h, 1, 64) .. '}'
  redis.call('HSET', k, 'p', ARGV[4], 'e', ARGV[5], 'v', 1)
  redis.call('PEXPIRE', k, ARGV[6])
end
return 0
"""
# KEYS: the prefix. ARGV: first, last, salt. The same names, unlinked.
REDIS_UNFILL = """
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local h = redis.sha1hex(ARGV[3] .. i) .. redis.sha1hex(i .. ARGV[3])
  redis.call('UNLINK', KEYS[1] .. '{' .. string.sub(h, 1, 64) .. '}')
end
return 0
"""
REDIS_BATCH = 10_000  # keys per script call: about 10 ms of the server's time


def _redis(level: Level) -> Any:
    import redis

    from coatcheck.stores.redis import parse

    settings = parse(level.url)
    return redis.Redis(host="127.0.0.1", port=6379, db=settings.db), settings.prefix


def fill_redis(level: Level, count: int) -> None:
    client, prefix = _redis(level)
    try:
        script = client.register_script(REDIS_FILL)
        deadline = time.time() + IDLE
        ttl = int(IDLE * 1000)
        for first in range(1, count + 1, REDIS_BATCH):
            last = min(count, first + REDIS_BATCH - 1)
            script(keys=[prefix], args=[first, last, level.url, level.payload, repr(deadline), ttl])
    finally:
        client.close()


def unfill_redis(level: Level, count: int) -> None:
    client, prefix = _redis(level)
    try:
        script = client.register_script(REDIS_UNFILL)
        for first in range(1, count + 1, REDIS_BATCH):
            script(keys=[prefix], args=[first, min(count, first + REDIS_BATCH - 1), level.url])
    finally:
        client.close()


# --- namespaces -------------------------------------------------------------------------------


def _url(store: str, tmp: str, i: int, tag: str) -> str:
    if store == "sqlite":
        return f"sqlite:///{tmp}/scale{i}.db"
    if store == "postgresql":
        return f"{POSTGRES_URL}?table={tag}_{i}"
    if store == "mysql":
        return f"{MYSQL_URL}?table={tag}_{i}"
    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
    return f"{base}/{REDIS_DBS[i]}?prefix={tag}:"


def _drop(store: str, level: Level) -> None:
    if store == "postgresql":
        from tests.support.postgresql import drop_namespace as drop_pg

        drop_pg(level.url)
    elif store == "mysql":
        from tests.support.mysql import drop_namespace as drop_my

        drop_my(level.url)
    elif store == "redis":
        from tests.support.redis import drop_namespace as drop_redis

        unfill_redis(level, level.size - SESSIONS)
        drop_redis(level.url)


FILL: dict[str, Callable[[Level, int], None]] = {
    "sqlite": fill_sqlite,
    "postgresql": fill_postgresql,
    "mysql": fill_mysql,
    "redis": fill_redis,
}


@dataclass
class Scale:
    """One store's three sizes, measured."""

    store: str
    levels: list[Level]
    fill_seconds: float

    def ratio(self) -> tuple[float, tuple[float, float]]:
        """p99 at the largest size / p99 at the smallest over every cycle, and the spread
        (interquartile range) of the same ratio taken round by round."""
        big, small = self.levels[-1], self.levels[0]
        ratios = [b / s for b, s in zip(big.p99s, small.p99s, strict=True)]
        return percentile(big.samples, 99) / percentile(small.samples, 99), iqr(ratios)


def measure(store: str) -> Scale:
    tag = f"bench_scale_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        levels = [Level(size, _url(store, tmp, i, tag)) for i, size in enumerate(LEVELS)]
        try:
            t = time.perf_counter()
            for level in levels:
                _seed_real(level)
                FILL[store](level, level.size - SESSIONS)
            filled = time.perf_counter() - t
            _rounds(levels)
        finally:
            for level in levels:
                _drop(store, level)
    return Scale(store, levels, filled)


def _rounds(levels: list[Level]) -> None:
    managers = [SessionManager(open_store(level.url), CONFIG) for level in levels]
    try:
        cyclers = [_cycler(m, level.sids) for m, level in zip(managers, levels, strict=True)]
        for cycle in cyclers:  # warm-up
            for _ in range(SESSIONS * 2):
                cycle()
        for _ in range(ROUNDS):
            for level, cycle in zip(levels, cyclers, strict=True):
                samples = []
                for _ in range(N):
                    t = time.perf_counter()
                    cycle()
                    samples.append((time.perf_counter() - t) * 1e6)
                level.samples += samples
                level.p99s.append(percentile(samples, 99))
    finally:
        for m in managers:
            m.store.close()


def _cycler(manager: SessionManager, sids: list[str]) -> Callable[[], None]:
    turn = [0]

    def cycle() -> None:
        sid = sids[turn[0] % len(sids)]
        turn[0] += 1
        s = manager.start(sid)
        s["n"] += 1
        s.write_close()

    return cycle


def run(stores: tuple[str, ...] = STORES) -> tuple[list[Scale], dict[str, str]]:
    out, failed = [], {}
    for store in stores:
        try:
            out.append(measure(store))
        except Exception as e:  # one store down must not sink the rest
            failed[store] = f"{type(e).__name__}: {e}"[:200]
            print(f"scale, {store}: not run ({failed[store]})")
    return out, failed


def size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def report(scales: list[Scale]) -> str:
    head = ["store", "stored sessions", "p50 µs", "p99 µs (IQR of rounds)"]
    head += [f"p99 {size(LEVELS[-1])} / p99 {size(LEVELS[0])}", "fill s"]
    rows = []
    for s in scales:
        r, spread = s.ratio()
        for i, level in enumerate(s.levels):
            last = i == len(s.levels) - 1
            rows.append(
                [
                    NAMES[s.store],
                    size(level.size),
                    fmt(percentile(level.samples, 50)),
                    fmt(percentile(level.samples, 99), iqr(level.p99s)),
                    fmt(r, spread, 2) if last else "",
                    f"{s.fill_seconds:.0f}" if last else "",
                ]
            )
    note = (
        f"{ROUNDS} rounds x {N} session cycles per size, alternating sizes; p50/p99 over every"
        f" cycle; {SESSIONS} real sessions per size, used in turn."
    )
    return note + "\n\n" + table(head, rows, right_from=2)


def scale_targets(scales: list[Scale], failed: dict[str, str]) -> list[Target]:
    out = []
    goal = f"<= {targets.SCALE_P99:g}x"
    for store in STORES:
        what = f"cycle p99 at {size(LEVELS[-1])} / at {size(LEVELS[0])} sessions, {NAMES[store]}"
        found = [s for s in scales if s.store == store]
        if not found:
            out.append(targets.not_run(what, goal, failed.get(store, "not selected")))
            continue
        r, spread = found[0].ratio()
        out.append(Target(what, goal, f"{fmt(r, spread, 2)}x", r <= targets.SCALE_P99))
    return out


def main(argv: list[str]) -> int:
    chosen = tuple(argv) or STORES
    scales, failed = run(chosen)
    print(report(scales))
    print()
    print(targets.render(scale_targets(scales, failed)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
