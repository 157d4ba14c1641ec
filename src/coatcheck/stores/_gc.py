"""GC in short batches for the SQL stores: how many expired rows the next DELETE takes.

A DELETE of thousands of rows holds their row locks and its log writes for as long as it
runs; batches sized to take about :data:`GC_TARGET` seconds keep every statement short, so
requests beside GC never wait long behind it (PostgreSQL and MySQL/MariaDB use this).
"""

from __future__ import annotations

GC_FIRST = 200
"""Rows in the first GC batch; :class:`GcPace` sizes the others."""
GC_MIN, GC_MAX = 50, 5000
GC_TARGET = 0.01
"""Seconds a GC batch should take: short enough never to hold row locks for long."""


class GcPace:
    """GC batch sizes that keep each batch near :data:`GC_TARGET` seconds.

    The time a row takes is estimated from the batches so far: a slower batch counts at
    once, a faster one only half (the average with the estimate), so one quick batch on a
    busy server cannot make the next one long. A batch grows by half at most, and stays
    within ``[GC_MIN, GC_MAX]``.
    """

    def __init__(self) -> None:
        self.size = GC_FIRST
        self._per_row: float | None = None

    def done(self, rows: int, elapsed: float) -> None:
        """A batch of ``rows`` rows took ``elapsed`` seconds: size the next one."""
        per_row = max(elapsed, 1e-6) / max(rows, 1)
        if self._per_row is not None:
            per_row = max(per_row, (self._per_row + per_row) / 2)
        self._per_row = per_row
        fitted = int(GC_TARGET / per_row)
        self.size = max(GC_MIN, min(GC_MAX, fitted, self.size * 3 // 2))
