"""``make bench``: every comparison in one run, the docs written from it, the targets printed.

``python -m bench.all [part ...]``; parts: floor, frameworks, profile, burst, scale, gc,
memory (default: all). Each part runs its contenders in the same run, alternating rounds
(bench/timing.py). A full run of every part rewrites docs/benchmarks.md from
bench/docs_template.md and draws docs/bench/*.png; a quick run (``BENCH_QUICK=1``) or a run
of some parts writes them to a scratch directory instead (``BENCH_OUT`` chooses the
directory either way). The run ends with where each target of the issue stands.

GC of 1M expired rows belongs to bench/gc_sql.py. When that module is there, the gc part
calls its ``results()`` if it has one (an iterable of mappings with ``store``, ``rows``,
``total_s`` and ``longest_ms``), else runs ``python -m bench.gc_sql --rows N`` and reads
those figures from its report (:func:`parse_gc`), keeping the report itself in the docs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from . import burst_compare, charts, cycle, frameworks, memory, profile_web, scale, targets
from .targets import Target
from .timing import QUICK, ROUNDS, detail, summary_table

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("docs_template.md")
PARTS = ("floor", "frameworks", "profile", "burst", "scale", "gc", "memory")
GC_TIMEOUT = 600
GC_ROWS = 100_000 if QUICK else 1_000_000


@dataclass
class Run:
    """What every part produced: markdown sections, charts, targets, and the time it took."""

    sections: dict[str, str] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    charts: list[Path] = field(default_factory=list)


def _failed(part: str, e: BaseException) -> str:
    traceback.print_exc()
    why = f"{type(e).__name__}: {e}".splitlines()[0][:200]
    print(f"\n{part}: failed ({why})\n")
    return why


# --- the parts -------------------------------------------------------------------------------


def part_floor(run: Run, out: Path) -> None:
    benches, failed = cycle.run()
    run.sections["floor_summary"] = summary_table(list(benches.values()))
    run.sections["floor_details"] = "\n\n".join(detail(b) for b in benches.values())
    if failed:
        run.sections["floor_summary"] += "\n\nNot run: " + "; ".join(
            f"{cycle.NAMES[k]} ({v})" for k, v in failed.items()
        )
    run.targets += cycle.floor_targets(benches, failed)
    if benches:
        run.charts.append(charts.floor_chart(benches, out / "floor.png"))
    print(run.sections["floor_summary"], "\n")


def part_frameworks(run: Run, out: Path) -> None:
    try:
        results = frameworks.run()
    except Exception as e:
        run.targets += frameworks.session_targets({}, _failed("frameworks", e))
        run.sections["frameworks"] = f"Not run: {e}"
        return
    note = (
        f"Median µs per request (interquartile range), {ROUNDS} rounds of {frameworks.N} requests."
    )
    run.sections["frameworks"] = note + "\n\n" + frameworks.report(results)
    run.targets += frameworks.session_targets(results)
    run.charts.append(charts.frameworks_chart(results, out / "frameworks.png"))
    print(run.sections["frameworks"], "\n")


def part_profile(run: Run, out: Path) -> None:
    profiles = profile_web.run()
    every = profile_web.INTERVAL * 1e6
    note = f"{profile_web.REQUESTS} requests per framework, sampled every {every:.0f} µs."
    run.sections["profile"] = note + "\n\n" + "\n\n".join(p.tables() for p in profiles)
    print(run.sections["profile"], "\n")


def part_burst(run: Run, out: Path) -> None:
    try:
        cases = burst_compare.run()
    except Exception as e:
        run.targets += burst_compare.burst_targets([], _failed("burst", e))
        run.sections["burst"] = f"Not run: {e}"
        return
    run.sections["burst"] = burst_compare.report(cases)
    run.targets += burst_compare.burst_targets(cases)
    run.charts.append(charts.burst_chart(cases, out / "burst.png"))
    print(run.sections["burst"], "\n")


def part_scale(run: Run, out: Path) -> None:
    scales, failed = scale.run()
    run.sections["scale"] = scale.report(scales)
    if failed:
        run.sections["scale"] += "\n\nNot run: " + "; ".join(
            f"{k} ({v})" for k, v in failed.items()
        )
    run.targets += scale.scale_targets(scales, failed)
    if scales:
        run.charts.append(charts.scale_chart(scales, out / "scale.png"))
    print(run.sections["scale"], "\n")


def part_gc(run: Run, out: Path) -> None:
    """The hook for bench/gc_sql.py (another module's work): its results, or its output."""
    what = f"GC of {GC_ROWS:,} expired rows: longest statement"
    goal = f"<= {targets.GC_STATEMENT_MS:g} ms"
    if importlib.util.find_spec("bench.gc_sql") is None:
        why = "bench/gc_sql.py is not there yet"
        run.sections["gc"] = f"Not measured in this run: {why}."
        run.targets.append(targets.not_run(what, goal, why))
        return
    module = importlib.import_module("bench.gc_sql")
    results = getattr(module, "results", None)
    if callable(results):
        rows = list(results())
        output = ""
    else:
        command = [sys.executable, "-m", "bench.gc_sql", "--rows", str(GC_ROWS)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=GC_TIMEOUT)
        output = done.stdout.strip()
        if done.returncode != 0:
            output += f"\n(exit status {done.returncode})\n{done.stderr.strip()[-1500:]}"
        rows = parse_gc(output)
    section = [_gc_table(rows)] if rows else []
    if output:
        section.append(
            f"Output of `python -m bench.gc_sql --rows {GC_ROWS}`:\n\n```\n{output}\n```"
        )
    run.sections["gc"] = "\n\n".join(section)
    run.targets += [_gc_target(row, goal) for row in rows]
    if not rows:
        run.targets.append(Target(what, goal, "no figures found in its output", None))
    print(run.sections["gc"], "\n")


_GC_STORE = re.compile(r"^(\w+): filled")
_GC_TOTAL = re.compile(r"gc\(\) removed (\d+) rows in ([\d.]+)s with (\d+) statements")
_GC_LONGEST = re.compile(r"longest statement ([\d.]+) ms")


def parse_gc(output: str) -> list[dict[str, Any]]:
    """The figures of ``python -m bench.gc_sql``'s report, per store (what it prints today:
    "NAME: filled ...", "gc() removed N rows in Ts with K statements", "longest statement
    X ms"); a store whose lines are not all there is left out."""
    rows: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in output.splitlines():
        if found := _GC_STORE.match(line):
            current = {"store": found[1]}
            rows.append(current)
        elif (found := _GC_TOTAL.search(line)) and current:
            current.update(rows=int(found[1]), total_s=float(found[2]), statements=int(found[3]))
        elif (found := _GC_LONGEST.search(line)) and current:
            current["longest_ms"] = float(found[1])
    keys = {"store", "rows", "total_s", "longest_ms"}
    return [r for r in rows if keys <= r.keys()]


def _gc_table(rows: Iterable[Mapping[str, Any]]) -> str:
    from .timing import table

    cells = [
        [
            str(r["store"]),
            f"{int(r['rows']):,}",
            f"{float(r['total_s']):.1f}",
            str(r.get("statements", "")),
            f"{float(r['longest_ms']):.0f}",
        ]
        for r in rows
    ]
    head = ["store", "expired rows removed", "total s", "statements", "longest statement ms"]
    return table(head, cells)


def _gc_target(row: Mapping[str, Any], goal: str) -> Target:
    longest = float(row["longest_ms"])
    what = f"GC of {int(row['rows']):,} expired rows, longest statement, {row['store']}"
    measured = f"{longest:.0f} ms (total {float(row['total_s']):.1f} s)"
    return Target(what, goal, measured, longest <= targets.GC_STATEMENT_MS)


def part_memory(run: Run, out: Path) -> None:
    usages = memory.run()
    run.sections["memory"] = memory.report(usages)
    run.charts.append(charts.memory_chart(usages, out / "memory.png"))
    print(run.sections["memory"], "\n")


RUNNERS: dict[str, Callable[[Run, Path], None]] = {
    "floor": part_floor,
    "frameworks": part_frameworks,
    "profile": part_profile,
    "burst": part_burst,
    "scale": part_scale,
    "gc": part_gc,
    "memory": part_memory,
}


# --- the run's description and the docs --------------------------------------------------------


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _servers() -> str:
    found = []
    try:
        import redis

        from tests.services import REDIS_URL

        client = redis.Redis.from_url(REDIS_URL)
        found.append(f"Redis {client.info('server')['redis_version']}")
        client.close()
    except Exception:  # a server that is down is reported by its part
        pass
    try:
        import psycopg

        from tests.services import POSTGRES_URL

        with psycopg.connect(POSTGRES_URL, connect_timeout=2) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            found.append(f"PostgreSQL {row[0].split(' ')[0] if row else '?'}")
    except Exception:
        pass
    try:
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", connect_timeout=2)
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            got = cur.fetchone()
            found.append(f"MariaDB {got[0].split('-')[0] if got else '?'}")
        conn.close()
    except Exception:
        pass
    return ", ".join(found)


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"{head}{' with uncommitted changes' if dirty else ''}"
    except OSError:
        return "unknown"


def describe(run: Run, started: datetime, took: float, loads: Sequence[tuple[float, ...]]) -> str:
    peers = ", ".join(
        f"{name} {_version(name)}"
        for name in ("Flask", "Flask-Session", "Starlette", "starsessions", "Django", "SQLAlchemy")
    )
    load = " / ".join(f"{a[0]:.1f}" for a in loads)
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items())
    return "\n".join(
        [
            f"- **When**: {started:%Y-%m-%d %H:%M} UTC, commit {_commit()};"
            f" {'quick smoke run' if QUICK else 'full run'}, {ROUNDS} rounds per comparison.",
            f"- **Took**: {took / 60:.1f} minutes ({parts}).",
            f"- **Machine**: {os.cpu_count()} CPUs, {platform.system()},"
            f" Python {platform.python_version()}; servers on loopback: {_servers()};"
            f" load average at the start of each part: {load}. The machine is shared:"
            " expect a few percent of noise per figure; the paired ratios are steadier than"
            " the absolute times.",
            f"- **Peers**: {peers}.",
        ]
    )


def write_docs(run: Run, out: Path, description: str) -> Path:
    text = TEMPLATE.read_text()
    values = {**run.sections, "run": description, "targets": targets.render(run.targets)}
    for key in ("floor_summary", "floor_details", "frameworks", "profile", "burst", "scale"):
        values.setdefault(key, "Not run in this run.")
    values.setdefault("gc", "Not run in this run.")
    values.setdefault("memory", "Not run in this run.")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    target = out.parent / "benchmarks.md"
    target.write_text(text)
    return target


def output_dir(parts: tuple[str, ...]) -> Path:
    """docs/bench for a full run of everything; a scratch directory otherwise."""
    chosen = os.environ.get("BENCH_OUT")
    if chosen:
        out = Path(chosen) / "bench"
    elif QUICK or set(parts) != set(PARTS):
        out = Path(tempfile.mkdtemp(prefix="coatcheck-bench-")) / "bench"
    else:
        out = ROOT / "docs" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # a part that fails this time must not leave last run's chart
        old.unlink()
    return out


def main(argv: list[str]) -> int:
    parts = tuple(argv) or PARTS
    unknown = [p for p in parts if p not in RUNNERS]
    if unknown:
        print(f"unknown part(s): {', '.join(unknown)}; choose from {', '.join(PARTS)}")
        return 2
    out = output_dir(parts)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    run = Run()
    loads = []
    print(f"python {platform.python_version()}, {ROUNDS} rounds, quick={QUICK}")
    print(f"parts: {' '.join(parts)}; docs and charts go to {out.parent}\n")
    for part in parts:
        print(f"=== {part} " + "=" * 60 + "\n", flush=True)
        loads.append(os.getloadavg())
        t = time.perf_counter()
        try:
            RUNNERS[part](run, out)
        except Exception as e:  # one part failing must not lose the others' figures
            why = _failed(part, e)
            run.sections.setdefault(part, f"Not run: {why}")
        run.seconds[part] = time.perf_counter() - t
    took = time.perf_counter() - t0
    docs = write_docs(run, out, describe(run, started, took, loads))
    print("=" * 70)
    print(f"\nTargets ({targets.tally(run.targets)}):\n")
    print(targets.render(run.targets))
    print(f"\nwrote {docs} and {len(run.charts)} charts in {out}")
    each = ", ".join(f"{k} {v:.0f}s" for k, v in run.seconds.items())
    print(f"total: {took / 60:.1f} minutes ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
