"""PNG charts of a ``bench.all`` run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import targets
from .burst_compare import SERIAL_FLOOR, Case
from .cycle import NAMES as STORE_NAMES
from .frameworks import LABELS as LIBRARY_LABELS
from .frameworks import NAMES as FRAMEWORK_NAMES
from .frameworks import Result
from .memory import NAMES as MEMORY_NAMES
from .memory import Usage
from .scale import NAMES as SCALE_NAMES
from .scale import Scale, size
from .timing import Bench, iqr, percentile, ratio, ratio_iqr


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def floor_chart(benches: dict[str, Bench], path: Path) -> Path:
    """Session cycle / raw unlocked floor: a group of bars per store (mode x size), with the
    targets as black ticks and the interquartile range of the paired ratios as error bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    width = 0.2
    shown: set[str] = set()
    for group, (name, bench) in enumerate(benches.items()):
        for i, row in enumerate(bench.rows):
            r = ratio(row.rounds, "session", bench.raw)
            lo, hi = ratio_iqr(row.rounds, "session", bench.raw)
            limit = targets.FLOOR_ASYNC if row.is_async else targets.FLOOR[name]
            x = group + (i - (len(bench.rows) - 1) / 2) * width
            big = row.nbytes > 1000
            kind = f"{'async' if row.is_async else 'sync'}, {'~4 KB' if big else '~200 B'}"
            colour = _FLOOR_COLOURS[(row.is_async, big)]
            label = kind if kind not in shown else None
            shown.add(kind)
            ax.bar(x, r, width, color=colour, label=label, edgecolor="black" if r > limit else None)
            ax.errorbar(x, r, yerr=[[max(0.0, r - lo)], [max(0.0, hi - r)]], color="black", lw=0.8)
            ax.plot([x - width / 2, x + width / 2], [limit, limit], color="black", lw=2)
    ax.set_yscale("log")
    top = max([1.6, *(ratio(r.rounds, "session", b.raw) for b in benches.values() for r in b.rows)])
    ticks = [t for t in (1, 1.25, 1.5, 2, 3, 4, 8, 16, 32, 64) if t <= top * 1.3]
    ax.set_yticks(ticks, [f"{t:g}x" for t in ticks])
    ax.set_ylim(0.8, top * 1.4)
    ax.set_xticks(range(len(benches)), [STORE_NAMES[n] for n in benches])
    ax.set_ylabel("coatcheck cycle / raw unlocked floor")
    ax.set_title("Session cycle against the raw driver's unlocked floor (black ticks: targets)")
    ax.legend(fontsize=8, ncol=4, loc="upper left")
    return _save(fig, path)


_FLOOR_COLOURS = {
    (False, False): "tab:blue",
    (False, True): "tab:cyan",
    (True, False): "tab:orange",
    (True, True): "gold",
}


def frameworks_chart(results: dict[str, Result], path: Path) -> Path:
    """µs per request, per framework and library (interquartile range as error bars)."""
    plt = _plt()
    names, medians, low, high, colours, y = [], [], [], [], [], []
    at = 0.0
    for fw, result in results.items():
        for lib, times in result.rounds.items():
            m = statistics.median(times)
            q1, q3 = iqr(times)
            names.append(f"{FRAMEWORK_NAMES[fw]}: {LIBRARY_LABELS[lib]}")
            medians.append(m)
            low.append(m - q1)
            high.append(q3 - m)
            colours.append("tab:blue" if lib.startswith("coatcheck") else "tab:grey")
            y.append(at)
            at += 1
        at += 0.6  # a gap between frameworks
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(names) + 1.2))
    ax.barh(y, medians, xerr=[low, high], color=colours)
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("µs per request, in process (blue: coatcheck)")
    ax.set_title("Per-request time with each session library")
    return _save(fig, path)


def burst_chart(cases: Sequence[Case], path: Path) -> Path:
    """Wall time of the 8-request burst per server and lock mode, with the serial floor."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = [c.label.replace(" | ", "\n", 1).replace(" | ", ", ") for c in cases]
    medians = [statistics.median(c.seconds) * 1000 for c in cases]
    colours = []
    for c in cases:
        lossy = c.lost > 0
        colours.append("tab:red" if lossy else "tab:blue" if c.case == "held" else "tab:green")
    ax.barh(range(len(cases)), medians, color=colours)
    ax.axvline(SERIAL_FLOOR * 1000, color="black", linestyle="--", label="serial floor")
    ax.set_yticks(range(len(cases)), names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("ms from first request to last answer (red: lost updates)")
    ax.legend(loc="lower right")
    ax.set_title("AJAX burst: 8 requests x 50 ms of work on one session")
    return _save(fig, path)


def scale_chart(scales: Sequence[Scale], path: Path) -> Path:
    """p99 of the cycle against the number of stored sessions."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for s in scales:
        xs = [level.size for level in s.levels]
        ys = [percentile(level.samples, 99) / 1000 for level in s.levels]
        line = ax.plot(xs, ys, marker="o", label=f"{SCALE_NAMES[s.store]} p99")[0]
        p50 = [percentile(level.samples, 50) / 1000 for level in s.levels]
        ax.plot(xs, p50, marker=".", linestyle="--", color=line.get_color(), alpha=0.6)
    ax.set_xscale("log")
    ax.set_xticks([level.size for level in scales[0].levels] if scales else [])
    if scales:
        ax.set_xticklabels([size(level.size) for level in scales[0].levels])
    ax.set_xlabel("stored sessions")
    ax.set_ylabel("session cycle, ms (solid p99, dashed p50)")
    ax.set_title("Tail latency against store size")
    ax.legend()
    return _save(fig, path)


def memory_chart(usages: Sequence[Usage], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = [f"{u.framework.capitalize()}, {MEMORY_NAMES[u.library]}" for u in usages]
    ax.barh(range(len(usages)), [u.peak_kb / 1024 for u in usages], color="tab:blue")
    ax.set_yticks(range(len(usages)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("peak RSS, MB")
    ax.set_title(f"Peak memory handling {usages[0].requests if usages else 0} new sessions")
    return _save(fig, path)
