"""What the ASGI and WSGI burst benchmarks share: the stores, the rounds and the table.

A benchmark supplies ``serve(url)`` (a context manager giving the base URL of a real server
on that store) and ``one_burst(base, case)`` (seconds from the first request sent to the
last answer, and how many answered 409). Rounds alternate between the cases, so load from
elsewhere on the machine hits every case alike.

Stores: SQLite, and Redis and PostgreSQL when reachable, each twice: as configured (lock
hand-over by notification) and with ``notify=false`` in the URL (the waiter polls with
backoff), the ``-poll`` rows. ``BENCH_STORES=redis,postgresql-poll`` picks some of them.
Each row's ``x floor`` is its median over its floor: the serial floor (requests x work) for
``held``, where the lock makes the requests take turns, the parallel floor (one request's
work) for the others.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from urllib.parse import urlsplit

from tests.services import POSTGRES_URL, REDIS_URL, reachable

from .timing import ROUNDS

Results = dict[str, tuple[list[float], int]]  # case -> (seconds per burst, 409s in all)


def stores() -> dict[str, str]:
    """SQLite in a temp dir; Redis (a key prefix of its own) and PostgreSQL (a table of its
    own) when reachable, each with and without notification; ``BENCH_STORES`` filters."""
    out = {"sqlite": f"sqlite:///{tempfile.mkdtemp()}/sessions.db"}
    tag = uuid.uuid4().hex[:8]
    redis = urlsplit(REDIS_URL)
    if reachable(redis.hostname or "127.0.0.1", redis.port or 6379):
        out["redis"] = _with(REDIS_URL, f"prefix=cc_bench_{tag}:")
        out["redis-poll"] = _with(out["redis"], "notify=false")
    pg = urlsplit(POSTGRES_URL)
    if reachable(pg.hostname or "127.0.0.1", pg.port or 5432):
        out["postgresql"] = _with(POSTGRES_URL, f"table=cc_bench_{tag}")
        out["postgresql-poll"] = _with(out["postgresql"], "notify=false")
    wanted = os.environ.get("BENCH_STORES")
    if wanted:
        names = {n.strip() for n in wanted.split(",")}
        out = {name: url for name, url in out.items() if name in names}
    return out


def _with(url: str, option: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{option}"


def _drop(name: str, url: str) -> None:
    """Remove what a benchmark left in a shared server: its keys, or its table."""
    if name.startswith("redis"):
        from tests.support.redis import drop_namespace

        drop_namespace(url)
    elif name.startswith("postgresql"):
        from tests.support.postgresql import drop_namespace as drop_table

        drop_table(url)


def measure(cases: Iterable[str], one_burst: Callable[[str], tuple[float, int]]) -> Results:
    """A warm-up burst per case, then ROUNDS alternating rounds of every case."""
    cases = list(cases)
    out: Results = {case: ([], 0) for case in cases}
    for case in cases:
        one_burst(case)  # warm-up: connections, tables, scripts
    for _ in range(ROUNDS):
        for case in cases:
            elapsed, conflicts = one_burst(case)
            times, total = out[case]
            times.append(elapsed)
            out[case] = (times, total + conflicts)
    return out


def check(statuses: list[int], case: str) -> int:
    """The number of 409s in a burst; anything but 200 or 409 is a broken run."""
    if set(statuses) - {200, 409}:
        raise RuntimeError(f"unexpected statuses in a {case} burst: {statuses}")
    return statuses.count(409)


def report(
    title: str,
    serve: Callable[[str], AbstractContextManager[str]],
    run: Callable[[str], Results],
    requests: int,
    slow_work: float,
) -> None:
    """Run ``run(base)`` on every store's server and print one table row per case."""
    print(title)
    serial, parallel = requests * slow_work * 1000, slow_work * 1000
    print(f"{ROUNDS} bursts per case; ms from first request sent to last answer")
    print(
        f"{'store':16} {'case':11} {'median':>8} {'min':>8} {'max':>8} {'x floor':>8} {'409s':>6}"
    )
    for name, url in stores().items():
        try:
            with serve(url) as base:
                results = run(base)
        finally:
            _drop(name, url)
        for case, (times, conflicts) in results.items():
            ms = [t * 1000 for t in times]
            floor = serial if case == "held" else parallel
            print(
                f"{name:16} {case:11} {statistics.median(ms):8.1f} {min(ms):8.1f}"
                f" {max(ms):8.1f} {statistics.median(ms) / floor:8.3f} {conflicts:6d}"
            )
    print(
        f"(serial floor: {serial:.0f} ms, for held; fully parallel floor: {parallel:.0f} ms,"
        " for early and optimistic)"
    )
