"""Timing shared by the benchmarks: alternating rounds, paired ratios, spreads, the tables.

Each benchmark times a few variants of one piece of work (coatcheck's session cycle, the raw
driver doing the same round trips, the raw driver's unlocked floor, a peer library, ...).
Rounds alternate between the variants, so load from elsewhere on a shared machine hits all
of them alike, and a ratio is the median of the ratios of the same round's figures (paired)
rather than a ratio of two medians taken minutes apart. Every figure comes with its spread:
the interquartile range over the rounds.

``BENCH_ROUNDS`` sets the rounds (default 15), ``BENCH_N`` the cycles per round (default per
benchmark); ``BENCH_QUICK=1`` makes a smoke run (5 rounds, a quarter of the cycles).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

QUICK = os.environ.get("BENCH_QUICK", "").lower() not in ("", "0", "false", "no")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5" if QUICK else "15"))
WARMUP = 20 if QUICK else 50  # cycles of each variant before timing: connections, scripts
TARGET = 1.25  # coatcheck's session cycle against the raw-driver floor (Redis, PostgreSQL)

Rounds = dict[str, list[float]]
DASH = "\N{EN DASH}"  # ranges and "not measured" in the tables


def cycles(default: int) -> int:
    """Cycles per round: ``BENCH_N``, or the benchmark's own default (a quarter when quick)."""
    return int(os.environ.get("BENCH_N", str(max(10, default // 4) if QUICK else default)))


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


def compare_batches(fns: Mapping[str, Callable[[int], float]], n: int, warmup: int = 0) -> Rounds:
    """Like :func:`compare`, for variants that time themselves: ``fn(n)`` runs ``n`` cycles
    and returns the seconds they took (so set-up per batch stays out of the figure)."""
    for fn in fns.values():
        fn(warmup or WARMUP)
    out: Rounds = {name: [] for name in fns}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            out[name].append(fn(n) / n * 1e6)
    return out


# --- statistics -----------------------------------------------------------------------------


def iqr(values: Sequence[float]) -> tuple[float, float]:
    """The first and third quartiles (the spread the tables show); one value: itself twice."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, linear between the nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    at = (len(ordered) - 1) * p / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def paired(rounds: Rounds, ours: str, theirs: Sequence[str]) -> list[float]:
    """Per round: ``ours`` / the fastest of ``theirs`` in the same round."""
    floors = [min(times) for times in zip(*(rounds[t] for t in theirs), strict=True)]
    return [x / y for x, y in zip(rounds[ours], floors, strict=True)]


def ratio(rounds: Rounds, ours: str, theirs: Sequence[str]) -> float:
    """Median over rounds of ``ours`` / the fastest of ``theirs`` in the same round."""
    return float(statistics.median(paired(rounds, ours, theirs)))


def ratio_iqr(rounds: Rounds, ours: str, theirs: Sequence[str]) -> tuple[float, float]:
    return iqr(paired(rounds, ours, theirs))


def fmt(value: float, spread: tuple[float, float] | None = None, digits: int = 0) -> str:
    """``value`` with its spread (first to third quartile): ``453 (440-470)``, en dash."""
    if value != value:  # NaN: not measured
        return DASH
    if spread is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({spread[0]:.{digits}f}{DASH}{spread[1]:.{digits}f})"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> str:
    """A markdown table; columns from ``right_from`` on are right-aligned."""
    align = ["---" if i < right_from else "---:" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- what a store benchmark measured ----------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of a table: sync or async, one payload size."""

    mode: str
    nbytes: int  # size of the stored record (header line + JSON data)
    rounds: Rounds

    def median(self, name: str) -> float:
        return statistics.median(self.rounds[name])

    def spread(self, name: str) -> tuple[float, float]:
        return iqr(self.rounds[name])

    def floor(self, raw: Sequence[str]) -> float:
        """The raw driver's per-cycle time: the fastest raw variant's median."""
        return min(self.median(r) for r in raw)

    @property
    def is_async(self) -> bool:
        return self.mode.startswith("async")


@dataclass(frozen=True)
class Bench:
    """What a benchmark module measured and how to label it.

    ``raw`` names the floor the ratios use: the raw driver's unlocked cycle (its fastest
    variant). Variants whose label starts with "raw" and that are not the floor are the raw
    driver doing coatcheck's own round trips (:func:`same_trips`).
    """

    store: str
    labels: dict[str, str]  # variant name -> column heading; "session" is coatcheck's cycle
    raw: tuple[str, ...]  # the variants that are the raw driver (the floor is their fastest)
    rows: list[Row]


def same_trips(bench: Bench) -> tuple[str, ...]:
    """The raw variants that send coatcheck's own statements/scripts (not the floor)."""
    return tuple(
        name
        for name, label in bench.labels.items()
        if name not in bench.raw and label.lower().startswith("raw")
    )


def report(bench: Bench) -> None:
    """Print the detailed table: every variant's median, and each one against the floor."""
    print(detail(bench))
    print()


def detail(bench: Bench) -> str:
    """The detailed table as markdown: medians (interquartile range) and paired ratios."""
    names = list(bench.labels)
    head = ["mode", "record bytes", *(bench.labels[n] for n in names)]
    head += [f"{bench.labels[n]} / floor" for n in names if n not in bench.raw]
    rows = []
    for row in bench.rows:
        cells = [row.mode, str(row.nbytes)]
        cells += [fmt(row.median(n), row.spread(n)) for n in names]
        cells += [
            fmt(ratio(row.rounds, n, bench.raw), ratio_iqr(row.rounds, n, bench.raw), 2)
            for n in names
            if n not in bench.raw
        ]
        rows.append(cells)
    title = f"{bench.store}: median µs per cycle (interquartile range), {ROUNDS} alternating rounds"
    return f"{title}\n\n{table(head, rows, right_from=1)}"


def summary_table(benches: Sequence[Bench]) -> str:
    """coatcheck's session cycle against the unlocked floor and the same round trips."""
    head = ["store", "mode", "record bytes", "coatcheck µs", "unlocked floor µs", "/ floor"]
    head += ["same trips µs", "/ same trips"]
    rows = []
    for b in benches:
        same = same_trips(b)
        for row in b.rows:
            cells = [b.store, row.mode, str(row.nbytes)]
            cells += [fmt(row.median("session"), row.spread("session"))]
            cells += [fmt(row.floor(b.raw))]
            cells += [
                fmt(ratio(row.rounds, "session", b.raw), ratio_iqr(row.rounds, "session", b.raw), 2)
            ]
            if same:
                cells += [fmt(row.floor(same))]
                r, spread = (
                    ratio(row.rounds, "session", same),
                    ratio_iqr(row.rounds, "session", same),
                )
                cells += [fmt(r, spread, 2)]
            else:
                cells += [DASH, DASH]
            rows.append(cells)
    return table(head, rows, right_from=2)


def summary(benches: Sequence[Bench]) -> None:
    """One table for all stores: coatcheck's session cycle against the raw-driver floor."""
    print(f"Summary: coatcheck session cycle against the raw driver ({ROUNDS} rounds)\n")
    print(summary_table(benches))
    print()
