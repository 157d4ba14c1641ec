"""Peak memory of a process handling 10k sessions: coatcheck against the peers.

``python -m bench.memory``. Each contender runs in a fresh subprocess: it builds the app of
bench/web_apps.py (Flask or Starlette, with no session, coatcheck on Redis, or the peer on
Redis), warms up with 200 requests, notes its resident set size, then handles ``REQUESTS``
(10k) requests that each start a new session (``/start`` with no cookie: a new id, ~200 bytes
of data, one store write). The table gives the peak RSS (``VmHWM`` of /proc/self/status)
and its growth over the warmed-up RSS, i.e. what the 10k sessions cost the process (the
sessions themselves live in Redis). ``BENCH_QUICK=1`` handles 1k.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import web_apps
from .timing import QUICK, table

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = 1_000 if QUICK else 10_000
WARMUP = 200
CONTENDERS = [
    ("flask", "none"),
    ("flask", "coatcheck-redis"),
    ("flask", "flask-session-redis"),
    ("starlette", "none"),
    ("starlette", "coatcheck-redis"),
    ("starlette", "starsessions-redis"),
]
NAMES = {
    "none": "no session",
    "coatcheck-redis": "coatcheck, Redis",
    "flask-session-redis": "Flask-Session, Redis",
    "starsessions-redis": "starsessions, Redis",
}


@dataclass(frozen=True)
class Usage:
    framework: str
    library: str
    requests: int
    warm_kb: int  # RSS after the warm-up
    peak_kb: int  # peak RSS of the whole process
    seconds: float

    @property
    def growth_kb(self) -> int:
        """Peak over warmed-up RSS (about zero, or slightly negative, when nothing grew)."""
        return self.peak_kb - self.warm_kb


def _status_kb(field: str) -> int:
    """A figure of /proc/self/status: ``VmRSS`` (resident now), ``VmHWM`` (peak resident).

    Not ``getrusage``'s ``ru_maxrss``: Linux keeps that across fork and exec, so a child of
    a big parent reports the parent's peak. ``VmHWM`` belongs to this process image alone.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(framework: str, library: str, ns: str, requests: int) -> dict[str, float]:
    """In the subprocess: warm up, then ``requests`` new sessions; what the process used."""
    if framework == "flask":
        app = web_apps.flask_app(library, ns)

        def many(n: int) -> None:
            for _ in range(n):
                reply = web_apps.wsgi_call(app, "/start")
                assert reply.status == 200 and (reply.cookie or library == "none")

    else:
        sapp = web_apps.starlette_app(library, ns)
        loop = asyncio.new_event_loop()

        async def amany(n: int) -> None:
            for _ in range(n):
                reply = await web_apps.asgi_call(sapp, "/start")
                assert reply.status == 200 and (reply.cookie or library == "none")

        def many(n: int) -> None:
            loop.run_until_complete(amany(n))

    many(WARMUP)
    warm = _status_kb("VmRSS")
    t = time.perf_counter()
    many(requests)
    seconds = time.perf_counter() - t
    peak = _status_kb("VmHWM")
    return {"warm_kb": warm, "peak_kb": peak, "seconds": seconds}


def measure(framework: str, library: str, ns: str) -> Usage:
    command = [sys.executable, "-m", "bench.memory", "child", framework, library, ns]
    command.append(str(REQUESTS))
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{framework}/{library}: {done.stderr.strip()[-500:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return Usage(
        framework, library, REQUESTS, int(got["warm_kb"]), int(got["peak_kb"]), got["seconds"]
    )


def run() -> list[Usage]:
    ns = web_apps.namespace()
    try:
        return [measure(fw, lib, ns) for fw, lib in CONTENDERS]
    finally:
        web_apps.drop(ns)


def report(usages: list[Usage]) -> str:
    head = ["framework", "sessions", "RSS warmed up MB", "peak RSS MB", "growth MB"]
    head += ["per request µs"]
    rows = [
        [
            u.framework.capitalize(),
            NAMES[u.library],
            f"{u.warm_kb / 1024:.1f}",
            f"{u.peak_kb / 1024:.1f}",
            f"{u.growth_kb / 1024:.1f}",
            f"{u.seconds / u.requests * 1e6:.0f}",
        ]
        for u in usages
    ]
    note = f"{REQUESTS} requests, each starting a new session, in a fresh process per line."
    return note + "\n\n" + table(head, rows, right_from=2)


def main(argv: list[str]) -> int:
    if argv[:1] == ["child"]:
        framework, library, ns, requests = argv[1], argv[2], argv[3], int(argv[4])
        print(json.dumps(child(framework, library, ns, requests)))
        return 0
    print(report(run()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
