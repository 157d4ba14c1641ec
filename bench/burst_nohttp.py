"""The held-lock burst without HTTP: how long the lock hand-over itself takes.

``python -m bench.burst_nohttp [STORE_URL ...]`` (default: Redis and PostgreSQL, the test
servers). ``BURST`` threads share one SessionManager and one session; each loads it with the
exclusive lock, works 50 ms, increments ``n`` and writes. The lock makes them run one after
another, so the wall time's floor is ``BURST`` x 50 ms, as in bench/burst_compare.py, which
runs the same burst through real web servers. The difference between the two is the web
servers' request path; the difference between this one and the floor is the hand-over (a
release notice, the waiter waking, its read) and the store's round trips.

Prints each burst's wall time and the gaps between one request's write and the next one's
load (the hand-over as the threads see it; a negative gap means the next request had the lock
before the writer's own call returned), then the median wall time and its ratio to the
floor. Run 2026-12-02 16:17 on a quiet machine: Redis 417 ms = 1.04x (gaps ~1 ms),
PostgreSQL 436 ms = 1.09x (gaps -1 to 4 ms).
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time

from coatcheck import Config, SessionManager, open_store
from tests.support.postgresql import drop_namespace

from .common import namespaced

REDIS = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
POSTGRES = os.environ.get("COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

BURST = 8
WORK = 0.05
BURSTS = 8


def burst(manager: SessionManager, sid: str) -> tuple[float, list[float]]:
    spans: list[tuple[float, float]] = []
    guard = threading.Lock()

    def one() -> None:
        s = manager.start(sid)
        loaded = time.perf_counter()
        time.sleep(WORK)
        s["n"] += 1
        s.write_close()
        with guard:
            spans.append((loaded, time.perf_counter()))

    threads = [threading.Thread(target=one) for _ in range(BURST)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    spans.sort()
    gaps = [spans[i + 1][0] - spans[i][1] for i in range(len(spans) - 1)]
    return wall, gaps


def run(url: str) -> float:
    store = open_store(url)
    create = getattr(store, "create_schema", None)
    if create is not None:
        create()
    manager = SessionManager(store, Config(cookie_secure=False, gc_probability=0))
    s = manager.start()
    s["n"] = 0
    s.write_close()
    walls = []
    for _ in range(BURSTS):
        wall, gaps = burst(manager, s.id)
        walls.append(wall)
        shown = " ".join(f"{g * 1000:.1f}" for g in gaps)
        print(f"  wall {wall * 1000:.0f} ms; hand-over gaps (ms): {shown}")
    end = manager.start(s.id)
    assert end["n"] == BURST * BURSTS, "an update was lost"
    end.destroy()
    store.close()
    if url.startswith("postgresql"):
        drop_namespace(url)
    return statistics.median(walls)


def main(argv: list[str]) -> int:
    urls = argv or [namespaced(REDIS, "prefix") + ":", namespaced(POSTGRES, "table")]
    floor = BURST * WORK
    for url in urls:
        print(url.split("://")[0])
        median = run(url)
        print(f"  median {median * 1000:.0f} ms = {median / floor:.2f}x the serial floor")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
