"""Every store's session-cycle benchmark, or the ones named: ``python -m bench.cycle [store ...]``.

Stores: sqlite, redis, postgresql, mysql, memcached (each is bench/bench_<store>.py, which
also runs on its own). Prints each store's detailed table, then one summary table of
coatcheck's session cycle against the raw-driver floor. ``BENCH_ROUNDS`` sets the number of
alternating rounds (default 15), ``BENCH_N`` the cycles per round (default per store).
"""

from __future__ import annotations

import importlib
import platform
import sys
import time

from .timing import ROUNDS, TARGET, Bench, report, summary

STORES = ("sqlite", "redis", "postgresql", "mysql", "memcached")


def main(argv: list[str]) -> int:
    names = argv or list(STORES)
    unknown = [n for n in names if n not in STORES]
    if unknown:
        print(f"unknown store(s): {', '.join(unknown)}; choose from {', '.join(STORES)}")
        return 2
    t0 = time.perf_counter()
    print(f"python {platform.python_version()}, {ROUNDS} rounds per variant\n")
    benches: list[Bench] = []
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        bench: Bench = module.run()
        report(bench)
        benches.append(bench)
    summary(benches)
    print(f"target: <= {TARGET} on Redis and PostgreSQL; took {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
