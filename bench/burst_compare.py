"""The AJAX burst on real servers: coatcheck's lock modes against Flask-Session and starsessions.

``python -m bench.burst_compare``. A page fires ``BURST`` (8) requests at once, all with one
session cookie; each increments the counter ``n`` of the session and does 50 ms of work
(bench/web_apps.py, ``/incr?work=0.05``). Servers run on loopback in subprocesses: Starlette
under uvicorn (one process, asyncio) and Flask under waitress (``BURST`` threads), each with
coatcheck on Redis and on PostgreSQL, and with the peer on Redis (starsessions, Flask-Session).

Cases, per server:

- held: coatcheck's exclusive lock, held through the work (PHP's default): the requests run
  one after another, so the wall time's floor is the serial floor, ``BURST`` x 50 ms;
- early: exclusive lock, ``write_close()`` before the work: the work overlaps;
- optimistic: no lock; a concurrent change of ``n`` is a conflict, answered 409;
- the peers, which lock nothing: all requests read the same ``n`` and write ``n + 1``.

After each burst the server is asked for ``n``: **lost updates** = requests answered 200 whose
increment is not in ``n`` (a 409 is a reported conflict, not a loss). Rounds alternate between
every server and case; the table gives the median wall time (interquartile range), and the
lost updates and conflicts summed over all rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from . import targets, web_apps
from .targets import Target
from .timing import QUICK, ROUNDS, fmt, iqr, table

ROOT = Path(__file__).resolve().parents[1]
BURST = 8
WORK = 0.05
SERIAL_FLOOR = BURST * WORK
BURSTS = 3 if QUICK else min(ROUNDS, 10)
SERVERS = [  # (framework, library)
    ("starlette", "coatcheck-redis"),
    ("starlette", "coatcheck-postgresql"),
    ("starlette", "starsessions-redis"),
    ("flask", "coatcheck-redis"),
    ("flask", "coatcheck-postgresql"),
    ("flask", "flask-session-redis"),
]
COATCHECK_CASES = {"held": "/incr", "early": "/incr_early", "optimistic": "/incr_optimistic"}
SERVER_NAMES = {"starlette": "Starlette (uvicorn)", "flask": "Flask (waitress)"}
LIBRARY_NAMES = {
    "coatcheck-redis": "coatcheck, Redis",
    "coatcheck-postgresql": "coatcheck, PostgreSQL",
    "starsessions-redis": "starsessions, Redis",
    "flask-session-redis": "Flask-Session, Redis",
}


@dataclass
class Case:
    framework: str
    library: str
    case: str  # held | early | optimistic | peer
    path: str
    seconds: list[float] = field(default_factory=list)
    lost: int = 0
    conflicts: int = 0
    requests: int = 0

    @property
    def label(self) -> str:
        mode = {
            "peer": "no lock (default)",
            "held": "exclusive, held",
            "early": "exclusive, early release",
        }
        parts = [SERVER_NAMES[self.framework], LIBRARY_NAMES[self.library]]
        return " | ".join([*parts, mode.get(self.case, self.case)])

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def server(framework: str, library: str, ns: str) -> Iterator[str]:
    """One app on a free loopback port in a subprocess; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "bench.web_apps", "serve", framework, library, ns]
    command += [str(port), str(BURST)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(proc, base, log, f"{framework}/{library}")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: IO[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            log.seek(0)
            last = log.read().decode(errors="replace").strip().splitlines()[-1:] or ["?"]
            raise RuntimeError(f"{name} server exited with {proc.returncode}: {last[0][:200]}")
        try:
            httpx.get(base + "/ready", timeout=1)  # any answer (404) means it serves
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} server did not start within 30 s") from None
            time.sleep(0.05)


async def one_burst(client: httpx.AsyncClient, base: str, case: Case) -> None:
    started = await client.get(base + "/start")
    cookie = started.headers["set-cookie"].split(";", 1)[0]
    headers = {"Cookie": cookie}
    url = f"{base}{case.path}?work={WORK}"
    t = time.perf_counter()
    replies = await asyncio.gather(*(client.get(url, headers=headers) for _ in range(BURST)))
    case.seconds.append(time.perf_counter() - t)
    statuses = [r.status_code for r in replies]
    if set(statuses) - {200, 409}:
        raise RuntimeError(f"{case.label}: unexpected statuses {statuses}")
    n = int((await client.get(base + "/get", headers=headers)).text)
    ok = statuses.count(200)
    case.requests += BURST
    case.conflicts += statuses.count(409)
    case.lost += ok - n


def cases_of(framework: str, library: str) -> list[Case]:
    if library.startswith("coatcheck"):
        return [Case(framework, library, c, p) for c, p in COATCHECK_CASES.items()]
    return [Case(framework, library, "peer", "/incr")]


SKIPPED: dict[str, str] = {}  # "framework/library" -> why its server did not run


def run() -> list[Case]:
    """Every server up at once; rounds alternate over every server and case. A server that
    does not start is left out (and said so in the report), not fatal."""
    ns = web_apps.namespace()
    cases: list[tuple[str, Case]] = []
    SKIPPED.clear()
    try:
        with contextlib.ExitStack() as stack:
            for framework, library in SERVERS:
                try:
                    base = stack.enter_context(server(framework, library, ns))
                except RuntimeError as e:
                    SKIPPED[f"{framework}/{library}"] = str(e)
                    print(f"  skipped: {e}")
                    continue
                cases += [(base, c) for c in cases_of(framework, library)]
            if not cases:
                raise RuntimeError("no server started: " + "; ".join(SKIPPED.values()))
            asyncio.run(_rounds(cases))
    finally:
        web_apps.drop(ns)
    return [c for _, c in cases]


async def _rounds(cases: list[tuple[str, Case]]) -> None:
    limits = httpx.Limits(max_connections=4 * BURST, max_keepalive_connections=4 * BURST)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        for base, case in cases:  # warm-up burst: connections, tables, scripts
            await one_burst(client, base, case)
            case.seconds.clear()
            case.lost = case.conflicts = case.requests = 0
        for _ in range(BURSTS):
            for base, case in cases:
                await one_burst(client, base, case)


def report(cases: list[Case]) -> str:
    head = ["server", "sessions", "lock mode", "wall ms", "/ serial floor"]
    head += ["lost updates", "409 conflicts", "requests"]
    rows = []
    for c in cases:
        ms = [s * 1000 for s in c.seconds]
        ratio = statistics.median(ms) / (SERIAL_FLOOR * 1000)
        rows.append(
            [
                *c.label.split(" | "),
                fmt(statistics.median(ms), iqr(ms)),
                f"{ratio:.2f}",
                *(str(c.lost), str(c.conflicts), str(c.requests)),
            ]
        )
    note = (
        f"{BURST} concurrent requests, {WORK * 1000:.0f} ms of work each, {BURSTS} bursts per"
        f" case; serial floor {SERIAL_FLOOR * 1000:.0f} ms, fully parallel floor"
        f" {WORK * 1000:.0f} ms."
    )
    skipped = "".join(f"\n\nNot run: {why}" for why in SKIPPED.values())
    return note + "\n\n" + table(head, rows, right_from=3) + skipped


def burst_targets(cases: list[Case], failed: str | None = None) -> list[Target]:
    out = []
    for library in ("coatcheck-redis", "coatcheck-postgresql"):
        for framework in ("starlette", "flask"):
            where = f"{LIBRARY_NAMES[library]}, {SERVER_NAMES[framework]}"
            what = f"held-lock burst / serial floor, {where}"
            found = [
                c for c in cases if (c.framework, c.library, c.case) == (framework, library, "held")
            ]
            if not found:
                why = failed or SKIPPED.get(f"{framework}/{library}", "not run")
                out.append(targets.not_run(what, f"<= {targets.BURST_HELD:g}x", why))
                continue
            c = found[0]
            ratios = [s / SERIAL_FLOOR for s in c.seconds]
            value = statistics.median(ratios)
            measured = f"{fmt(value, iqr(ratios), 2)}x ({c.median * 1000:.0f} ms)"
            out.append(
                Target(what, f"<= {targets.BURST_HELD:g}x", measured, value <= targets.BURST_HELD)
            )
    for c in cases:
        if c.case == "optimistic":
            where = f"{LIBRARY_NAMES[c.library]}, {SERVER_NAMES[c.framework]}"
            what = f"optimistic burst: lost updates, {where}"
            measured = f"{c.lost} lost, {c.conflicts} reported as 409 of {c.requests}"
            out.append(Target(what, "0 lost", measured, c.lost == 0))
    if not any(c.case == "optimistic" for c in cases):
        out.append(targets.not_run("optimistic burst: lost updates", "0 lost", failed or "not run"))
    return out


def main() -> int:
    cases = run()
    print(report(cases))
    print()
    print(targets.render(burst_targets(cases)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
