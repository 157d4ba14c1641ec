"""Every store's session-cycle benchmark, or the ones named: ``python -m bench.cycle [store ...]``.

Stores: sqlite, redis, postgresql, mysql, memcached (each is bench/bench_<store>.py, which
also runs on its own). Prints each store's detailed table, then one summary table of
coatcheck's session cycle against the raw driver's unlocked floor and against the raw driver
sending coatcheck's own round trips, then where the floor targets stand. ``BENCH_ROUNDS``
sets the number of alternating rounds (default 15), ``BENCH_N`` the cycles per round
(default per store), ``BENCH_QUICK=1`` a smoke run.
"""

from __future__ import annotations

import importlib
import platform
import sys
import time
import traceback
from collections.abc import Sequence

from . import targets
from .targets import Target
from .timing import ROUNDS, Bench, ratio, report, summary

STORES = ("sqlite", "redis", "postgresql", "mysql", "memcached")
NAMES = {
    "sqlite": "SQLite",
    "redis": "Redis",
    "postgresql": "PostgreSQL",
    "mysql": "MariaDB",
    "memcached": "Memcached",
}


def run(names: Sequence[str] = STORES) -> tuple[dict[str, Bench], dict[str, str]]:
    """Run each store's benchmark; returns what ran (by store) and why the others did not."""
    benches: dict[str, Bench] = {}
    failed: dict[str, str] = {}
    for name in names:
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            bench: Bench = module.run()
        except Exception as e:  # a store that is down or broken must not sink the other parts
            traceback.print_exc()
            failed[name] = f"{type(e).__name__}: {e}"[:200]
            print(f"{name}: not run ({failed[name]})\n")
            continue
        report(bench)
        benches[name] = bench
    return benches, failed


def floor_targets(benches: dict[str, Bench], failed: dict[str, str]) -> list[Target]:
    """Per store and mode: the session cycle / unlocked floor, worst of the payload sizes."""
    out = []
    for name in STORES:
        for mode, limit in (("sync", targets.FLOOR[name]), ("async", targets.FLOOR_ASYNC)):
            what = f"cycle / raw unlocked floor, {NAMES[name]} {mode}"
            if name not in benches:
                why = failed.get(name, "not selected")
                out.append(targets.not_run(what, f"<= {limit:g}x", why))
                continue
            b = benches[name]
            rows = [r for r in b.rows if r.is_async == (mode == "async")]
            ratios = [ratio(r.rounds, "session", b.raw) for r in rows]
            if not ratios:
                out.append(targets.not_run(what, f"<= {limit:g}x", "no such rows"))
                continue
            sizes = ", ".join(
                f"{x:.2f}x at {r.nbytes} B" for x, r in zip(ratios, rows, strict=True)
            )
            out.append(Target(what, f"<= {limit:g}x", sizes, max(ratios) <= limit))
    return out


def main(argv: list[str]) -> int:
    names = argv or list(STORES)
    unknown = [n for n in names if n not in STORES]
    if unknown:
        print(f"unknown store(s): {', '.join(unknown)}; choose from {', '.join(STORES)}")
        return 2
    t0 = time.perf_counter()
    print(f"python {platform.python_version()}, {ROUNDS} rounds per variant\n")
    benches, failed = run(names)
    summary(list(benches.values()))
    print(targets.render([t for t in floor_targets(benches, failed) if t.met is not None]))
    print(f"\ntook {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
