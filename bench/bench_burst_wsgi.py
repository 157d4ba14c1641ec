"""The AJAX burst under waitress: wall time of 8 concurrent requests sharing one session.

Each request does 50 ms of slow work (``time.sleep``) in a waitress thread (8 threads).
The three cases of tests/web/test_burst_wsgi.py, timed from the first request sent to the
last answer:

* early: exclusive lock, ``write_close()`` before the work: the work overlaps.
* held: exclusive lock held through the work: the requests run one after another.
* optimistic: no lock, each request writes a key of its own; 409s are counted, not retried.

Stores: SQLite (a file in a temp dir) and Redis when reachable (``COATCHECK_TEST_REDIS``).
Run: python -m bench.bench_burst_wsgi (``BENCH_ROUNDS`` bursts per case, default 15).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from urllib.parse import urlsplit

from tests.services import REDIS_URL, reachable
from tests.web.wsgi_burst import THREADS, burst, seed, serve

from .timing import ROUNDS

SLOW_WORK = 0.05
CASES = {
    "early": ["/incr?early=1"] * THREADS,
    "held": ["/incr"] * THREADS,
    "optimistic": [f"/key?name=k{i}" for i in range(THREADS)],
}


def one_burst(base: str, paths: list[str]) -> tuple[float, int]:
    """Seconds from the first request to the last answer, and how many got a 409."""
    sid = seed(base)
    t = time.perf_counter()
    statuses = [status for status, _ in burst(base, sid, paths)]
    elapsed = time.perf_counter() - t
    if set(statuses) - {200, 409}:
        raise RuntimeError(f"unexpected statuses in a burst: {statuses}")
    return elapsed, statuses.count(409)


def measure(base: str) -> dict[str, tuple[list[float], int]]:
    out: dict[str, tuple[list[float], int]] = {case: ([], 0) for case in CASES}
    for paths in CASES.values():
        one_burst(base, paths)  # warm-up: connections, tables, scripts
    for _ in range(ROUNDS):
        for case, paths in CASES.items():  # alternate, so outside load hits every case alike
            elapsed, conflicts = one_burst(base, paths)
            times, total = out[case]
            times.append(elapsed)
            out[case] = (times, total + conflicts)
    return out


def main() -> None:
    stores = {"sqlite": f"sqlite:///{tempfile.mkdtemp()}/sessions.db"}
    redis = urlsplit(REDIS_URL)
    if reachable(redis.hostname or "127.0.0.1", redis.port or 6379):
        stores["redis"] = f"{REDIS_URL}?prefix=cc_bench_{uuid.uuid4().hex[:8]}:"
    print(f"WSGI burst (waitress, {THREADS} threads): {THREADS} concurrent requests,")
    print(f"{SLOW_WORK * 1000:.0f} ms work each, {ROUNDS} bursts per case;")
    print("ms from first request sent to last answer")
    print(f"{'store':8} {'case':11} {'median':>8} {'min':>8} {'max':>8} {'409s':>6}")
    for name, url in stores.items():
        try:
            with serve(url) as base:
                results = measure(base)
        finally:
            if name == "redis":
                from coatcheck.stores.redis import drop_namespace

                drop_namespace(url)
        for case, (times, conflicts) in results.items():
            ms = [t * 1000 for t in times]
            print(
                f"{name:8} {case:11} {statistics.median(ms):8.1f} {min(ms):8.1f}"
                f" {max(ms):8.1f} {conflicts:6d}"
            )
    print(
        f"(serial floor: {THREADS * SLOW_WORK * 1000:.0f} ms; fully parallel floor:"
        f" {SLOW_WORK * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
