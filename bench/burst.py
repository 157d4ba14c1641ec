"""What the ASGI and WSGI burst benchmarks share: the stores, the rounds and the table.

A benchmark supplies ``serve(url)`` (a context manager giving the base URL of a real server
on that store) and ``one_burst(base, case)`` (seconds from the first request sent to the
last answer, and how many answered 409). Rounds alternate between the cases, so load from
elsewhere on the machine hits every case alike.
"""

from __future__ import annotations

import statistics
import tempfile
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from urllib.parse import urlsplit

from tests.services import REDIS_URL, reachable

from .timing import ROUNDS

Results = dict[str, tuple[list[float], int]]  # case -> (seconds per burst, 409s in all)


def stores() -> dict[str, str]:
    """SQLite in a temp dir, and Redis (a key prefix of its own) when it is reachable."""
    out = {"sqlite": f"sqlite:///{tempfile.mkdtemp()}/sessions.db"}
    redis = urlsplit(REDIS_URL)
    if reachable(redis.hostname or "127.0.0.1", redis.port or 6379):
        out["redis"] = f"{REDIS_URL}?prefix=cc_bench_{uuid.uuid4().hex[:8]}:"
    return out


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
    print(f"{ROUNDS} bursts per case; ms from first request sent to last answer")
    print(f"{'store':8} {'case':11} {'median':>8} {'min':>8} {'max':>8} {'409s':>6}")
    for name, url in stores().items():
        try:
            with serve(url) as base:
                results = run(base)
        finally:
            if name == "redis":
                from tests.support.redis import drop_namespace

                drop_namespace(url)
        for case, (times, conflicts) in results.items():
            ms = [t * 1000 for t in times]
            print(
                f"{name:8} {case:11} {statistics.median(ms):8.1f} {min(ms):8.1f}"
                f" {max(ms):8.1f} {conflicts:6d}"
            )
    print(
        f"(serial floor: {requests * slow_work * 1000:.0f} ms; fully parallel floor:"
        f" {slow_work * 1000:.0f} ms)"
    )
