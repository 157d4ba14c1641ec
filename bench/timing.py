"""Timing shared by the store benchmarks: alternating rounds, paired ratios, the tables.

Each benchmark times a few variants of one session cycle (coatcheck's session, the raw
driver doing the same round trips, ...). Rounds alternate between the variants, so load
from elsewhere on a shared machine hits all of them alike, and a ratio is the median of the
ratios of neighbouring rounds rather than a ratio of two medians taken minutes apart.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
WARMUP = 50  # cycles of each variant before timing: connections open, scripts/statements ready
TARGET = 1.25  # coatcheck's session cycle against the raw-driver floor (Redis, PostgreSQL)

Rounds = dict[str, list[float]]


def cycles(default: int) -> int:
    """Cycles per round: ``BENCH_N`` or the benchmark's own default."""
    return int(os.environ.get("BENCH_N", str(default)))


def compare(fns: Mapping[str, Callable[[], object]], n: int) -> Rounds:
    """µs per cycle of each variant, per round."""
    for _ in range(WARMUP):
        for fn in fns.values():
            fn()
    out: Rounds = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(n):
                fn()
            out[name].append((time.perf_counter() - t) / n * 1e6)
    return out


async def compare_async(fns: Mapping[str, Callable[[], Awaitable[object]]], n: int) -> Rounds:
    for _ in range(WARMUP):
        for fn in fns.values():
            await fn()
    out: Rounds = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(n):
                await fn()
            out[name].append((time.perf_counter() - t) / n * 1e6)
    return out


def ratio(rounds: Rounds, ours: str, theirs: Sequence[str]) -> float:
    """Median over rounds of ``ours`` / the fastest of ``theirs`` in the same round."""
    floors = [min(times) for times in zip(*(rounds[t] for t in theirs), strict=True)]
    return float(statistics.median([x / y for x, y in zip(rounds[ours], floors, strict=True)]))


@dataclass(frozen=True)
class Row:
    """One line of a table: sync or async, one payload size."""

    mode: str
    nbytes: int  # size of the stored record (header line + JSON data)
    rounds: Rounds

    def median(self, name: str) -> float:
        return statistics.median(self.rounds[name])

    def floor(self, raw: Sequence[str]) -> float:
        """The raw driver's per-cycle time: the fastest raw variant's median."""
        return min(self.median(r) for r in raw)


@dataclass(frozen=True)
class Bench:
    """What a benchmark module measured and how to label it."""

    store: str
    labels: dict[str, str]  # variant name -> column heading; "session" is coatcheck's cycle
    raw: tuple[str, ...]  # the variants that are the raw driver (the floor is their fastest)
    rows: list[Row]


def report(bench: Bench) -> None:
    """Print the detailed table: every variant's median, and each one against the floor."""
    names = list(bench.labels)
    print(f"{bench.store}: median µs per cycle, {ROUNDS} alternating rounds\n")
    head = ["mode", "record bytes", *(bench.labels[n] for n in names)]
    head += [f"{bench.labels[n]} / raw floor" for n in names if n not in bench.raw]
    print("| " + " | ".join(head) + " |")
    print("| --- |" + " ---: |" * (len(head) - 1))
    for row in bench.rows:
        cells = [row.mode, str(row.nbytes)] + [f"{row.median(n):.0f}" for n in names]
        cells += [f"{ratio(row.rounds, n, bench.raw):.2f}" for n in names if n not in bench.raw]
        print("| " + " | ".join(cells) + " |")
    print()


def summary(benches: Sequence[Bench]) -> None:
    """One table for all stores: coatcheck's session cycle against the raw-driver floor."""
    print(f"Summary: coatcheck session cycle against the raw-driver floor ({ROUNDS} rounds)\n")
    print("| store | mode | record bytes | coatcheck µs | raw µs | ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for b in benches:
        for row in b.rows:
            r = ratio(row.rounds, "session", b.raw)
            cells = [b.store, row.mode, str(row.nbytes), f"{row.median('session'):.0f}"]
            cells += [f"{row.floor(b.raw):.0f}", f"{r:.2f}"]
            print("| " + " | ".join(cells) + " |")
    print()
