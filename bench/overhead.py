"""Where a session cycle's time goes: inside the store's calls, or in coatcheck around them.

Runs the session cycle of bench/common.py against a real store, with every store call
timed; "around" is the cycle's time minus the time inside store calls (the engine and
session layer, plus a wrapper call per store method). The store-only cycle is timed the
same way for comparison. Measured hot on ``memory://`` the "around" figure is what the
engine costs with warm caches; against a store over the network, each round trip leaves
the caches cold and the same work costs about twice as much or more.

Run: python -m bench.overhead [store-url ...] (default: memory:// and the test Redis).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from coatcheck import SessionManager, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.base import Store

from .common import CONFIG, data, namespaced, session_cycle, store_cycle

REDIS = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))


class Timed:
    """Forwards to a real store, adding up the time spent inside its methods."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.inside = 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.inside += time.perf_counter() - t

        return timed


def measure(timed: Timed, cycle: Callable[[], None], n: int) -> tuple[float, float]:
    """Median µs per cycle over rounds: (whole cycle, around the store calls)."""
    whole, around = [], []
    for _ in range(ROUNDS):
        timed.inside = 0.0
        t = time.perf_counter()
        for _ in range(n):
            cycle()
        total = time.perf_counter() - t
        whole.append(total / n * 1e6)
        around.append((total - timed.inside) / n * 1e6)
    return statistics.median(whole), statistics.median(around)


def run(url: str) -> None:
    if not url.startswith("memory"):
        url = namespaced(url, "prefix") + ":"
    store = open_store(url)
    timed = Timed(store)
    manager = SessionManager(timed, CONFIG)  # type: ignore[arg-type]  # forwards every call
    ids = []
    for _ in range(2):
        s = manager.start()
        s.update(data(200))
        s.write_close()
        ids.append(s.id)
    n = 2000 if url.startswith("memory") else 300
    session = session_cycle(manager, ids[0])
    alone = store_cycle(timed, storage_key(ids[1]))  # type: ignore[arg-type]
    for _ in range(n // 4):
        session()
        alone()
    s_whole, s_around = measure(timed, session, n)
    a_whole, a_around = measure(timed, alone, n)
    print(f"{url.split('?')[0]}: session cycle {s_whole:.1f} µs, {s_around:.1f} around the store;")
    print(f"  store-only cycle {a_whole:.1f} µs, {a_around:.1f} around the store (bump + clock)")
    for sid in ids:
        store.destroy(storage_key(sid))
    store.close()


def main(argv: list[str]) -> int:
    for url in argv or ["memory://", REDIS]:
        run(url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
