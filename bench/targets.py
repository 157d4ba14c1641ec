"""The targets of the benchmark issue, and where a run left each one: met, missed, not run.

Every part of ``python -m bench.all`` hands back :class:`Target` lines; the run prints them
together at the end and writes them into docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .timing import table

# coatcheck's exclusive-lock session cycle / the raw driver's unlocked floor, sync
FLOOR = {"redis": 1.25, "postgresql": 1.25, "mysql": 1.25, "sqlite": 1.5, "memcached": 1.5}
FLOOR_ASYNC = 1.25  # async: against the raw async driver's unlocked floor, every store
SESSION_COST = 0.5  # coatcheck's session cost / the peer's (Flask-Session, starsessions)
BURST_HELD = 1.05  # held-lock burst wall time / the serial floor (N x the work)
GC_STATEMENT_MS = 100.0  # longest single GC statement with 1M expired rows
SCALE_P99 = 1.1  # p99 of the cycle at 1M stored sessions / at 10k


@dataclass(frozen=True)
class Target:
    """One line of the target table."""

    what: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run (the reason is in ``measured``)

    @property
    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: "not run"}[self.met]


def at_most(what: str, value: float, limit: float, unit: str = "x", digits: int = 2) -> Target:
    """A target of the form "value <= limit"."""
    shown = f"{value:.{digits}f}{unit}"
    return Target(what, f"<= {limit:g}{unit}", shown, value <= limit)


def not_run(what: str, goal: str, why: str) -> Target:
    return Target(what, goal, why, None)


def render(targets: Sequence[Target]) -> str:
    rows = [[t.what, t.goal, t.measured, t.verdict] for t in targets]
    return table(["target", "goal", "measured", "verdict"], rows, right_from=4)


def tally(targets: Sequence[Target]) -> str:
    met = sum(t.met is True for t in targets)
    missed = sum(t.met is False for t in targets)
    skipped = sum(t.met is None for t in targets)
    return f"{met} met, {missed} not met, {skipped} not run"
