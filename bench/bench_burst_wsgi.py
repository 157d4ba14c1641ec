"""The AJAX burst under waitress: wall time of 8 concurrent requests sharing one session.

Each request does 50 ms of slow work (``time.sleep``) in a waitress thread (8 threads).
The three cases of tests/web/test_burst_wsgi.py, timed from the first request sent to the
last answer:

* early: exclusive lock, ``write_close()`` before the work: the work overlaps.
* held: exclusive lock held through the work: the requests run one after another.
* optimistic: no lock, each request writes a key of its own; 409s are counted, not retried.

Stores: see bench/burst.py (SQLite; Redis and PostgreSQL with and without notification).
Run: python -m bench.bench_burst_wsgi (``BENCH_ROUNDS`` bursts per case, default 15).
"""

from __future__ import annotations

import time

from tests.web.wsgi_burst import THREADS, burst, seed, serve

from .burst import Results, check, measure, report

SLOW_WORK = 0.05
CASES = {
    "early": ["/incr?early=1"] * THREADS,
    "held": ["/incr"] * THREADS,
    "optimistic": [f"/key?name=k{i}" for i in range(THREADS)],
}


def one_burst(base: str, case: str) -> tuple[float, int]:
    """Seconds from the first request to the last answer, and how many got a 409."""
    sid = seed(base)
    t = time.perf_counter()
    statuses = [status for status, _ in burst(base, sid, CASES[case])]
    return time.perf_counter() - t, check(statuses, case)


def run(base: str) -> Results:
    return measure(CASES, lambda case: one_burst(base, case))


def main() -> None:
    title = (
        f"WSGI burst (waitress, {THREADS} threads): {THREADS} concurrent requests,"
        f" {SLOW_WORK * 1000:.0f} ms work each"
    )
    report(title, serve, run, THREADS, SLOW_WORK)


if __name__ == "__main__":
    main()
