"""Per-request cost of a session in Flask, Starlette and Django: coatcheck against the peers.

``python -m bench.frameworks [flask|starlette|django ...]``. Each framework serves the same
view (bench/web_apps.py: ``n += 1`` in a session of about 200 bytes) with no session, with
coatcheck, and with the peers on the same Redis / PostgreSQL, driven in process with no
sockets (a WSGI call for Flask and Django, a direct ASGI call for Starlette), alternating
rounds of ``BENCH_N`` requests (default 100) between the contenders.

Per request: the time, and the **session cost** = time with the session - time with none
(paired by round). coatcheck's cost / the peer's cost is the figure the target is about
(<= 0.5 against Flask-Session and starsessions on Redis): coatcheck locks the session
(two round trips: read + lock, write + unlock) where they lock nothing (GET, SET).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import targets, web_apps
from .targets import Target
from .timing import DASH, ROUNDS, Rounds, compare_batches, cycles, fmt, iqr, table

N = cycles(100)
LABELS = {
    "none": "no session",
    "coatcheck-redis": "coatcheck, Redis",
    "coatcheck-postgresql": "coatcheck, PostgreSQL",
    "flask-session-redis": "Flask-Session, Redis",
    "flask-session-sqlalchemy": "Flask-Session, SQLAlchemy on PostgreSQL",
    "starsessions-redis": "starsessions, Redis",
    "django-cache-redis": "Django cache engine, RedisCache",
    "django-db-postgresql": "Django db engine, PostgreSQL",
}
NAMES = {"flask": "Flask", "starlette": "Starlette", "django": "Django"}
# (coatcheck, peer, whether the issue sets a target on this pair)
PAIRS = {
    "flask": [
        ("coatcheck-redis", "flask-session-redis", True),
        ("coatcheck-postgresql", "flask-session-sqlalchemy", False),
    ],
    "starlette": [("coatcheck-redis", "starsessions-redis", True)],
    "django": [
        ("coatcheck-redis", "django-cache-redis", False),
        ("coatcheck-postgresql", "django-db-postgresql", False),
    ],
}


class Mismatch(AssertionError):
    """A contender answered something else than the count it was sent: a broken run."""


@dataclass(frozen=True)
class Result:
    """µs per request of every contender of one framework, per round."""

    framework: str
    rounds: Rounds
    skipped: dict[str, str] = field(default_factory=dict)  # library -> why it did not run

    def cost(self, library: str) -> list[float]:
        """Per round: the session's cost, the time with it minus the time with none."""
        return [x - y for x, y in zip(self.rounds[library], self.rounds["none"], strict=True)]

    def cost_ratio(self, ours: str, theirs: str) -> list[float]:
        return [x / y for x, y in zip(self.cost(ours), self.cost(theirs), strict=True)]

    def table(self) -> str:
        head = ["library", "µs per request", "session cost µs"]
        rows = []
        for lib, times in self.rounds.items():
            cost = (
                DASH
                if lib == "none"
                else fmt(statistics.median(self.cost(lib)), iqr(self.cost(lib)))
            )
            rows.append([LABELS[lib], fmt(statistics.median(times), iqr(times)), cost])
        return table(head, rows)

    def ratios(self) -> list[tuple[str, str, float, tuple[float, float]]]:
        out = []
        for ours, theirs, _ in PAIRS[self.framework]:
            if ours in self.rounds and theirs in self.rounds:
                r = self.cost_ratio(ours, theirs)
                out.append((ours, theirs, statistics.median(r), iqr(r)))
        return out

    def ratio_table(self) -> str:
        head = ["coatcheck", "peer", "coatcheck's session cost / the peer's"]
        rows = [[LABELS[a], LABELS[b], fmt(r, spread, 2)] for a, b, r, spread in self.ratios()]
        return table(head, rows, right_from=2)


def _checked(call: Callable[[int], bytes], n: int, first: int) -> float:
    """Run ``call(i)`` for ``n`` requests; each must answer its count."""
    t = time.perf_counter()
    for i in range(first, first + n):
        body = call(i)
        if body != str(i).encode():
            raise Mismatch(f"request {i} answered {body[:200]!r}")
    return time.perf_counter() - t


def _wsgi_contender(app: Callable[..., object]) -> Callable[[int], float]:
    cookie = web_apps.wsgi_call(app, "/start").cookie
    done = [0]

    def batch(n: int) -> float:
        def one(i: int) -> bytes:
            return web_apps.wsgi_call(app, "/incr", cookie).body

        elapsed = _checked(one, n, done[0] + 1)
        done[0] += n
        return elapsed

    return batch


Skipped = dict[str, str]  # library -> why it did not run


def _contenders(
    libraries: tuple[str, ...], build: Callable[[str], Callable[[int], float]], skipped: Skipped
) -> dict[str, Callable[[int], float]]:
    """Each library's batch runner, tried once; one that fails is skipped, not fatal (a
    store or peer that is down, or a tree in the middle of someone's change)."""
    fns = {}
    for lib in libraries:
        try:
            fn = build(lib)
            fn(3)
        except Exception as e:
            if lib == "none":
                raise
            skipped[lib] = f"{type(e).__name__}: {e}".splitlines()[0][:160]
            print(f"  {lib}: skipped ({skipped[lib]})")
            continue
        fns[lib] = fn
    return fns


def run_flask(ns: str, libraries: tuple[str, ...], skipped: Skipped) -> Rounds:
    build = lambda lib: _wsgi_contender(web_apps.flask_app(lib, ns))  # noqa: E731
    return compare_batches(_contenders(libraries, build, skipped), N, warmup=N // 2)


def run_django(ns: str, libraries: tuple[str, ...], skipped: Skipped) -> Rounds:
    def build(lib: str) -> Callable[[int], float]:
        app = web_apps.django_app(lib, ns)
        with app.enabled():
            inner = _wsgi_contender(app)

        def batch(n: int) -> float:
            with app.enabled():  # the contender's settings, entered outside the timed loop
                return inner(n)

        return batch

    return compare_batches(_contenders(libraries, build, skipped), N, warmup=N // 2)


def run_starlette(ns: str, libraries: tuple[str, ...], skipped: Skipped) -> Rounds:
    loop = asyncio.new_event_loop()
    apps: dict[str, object] = {}

    def build(lib: str) -> Callable[[int], float]:
        apps[lib] = web_apps.starlette_app(lib, ns)
        return _asgi_contender(loop, apps[lib])

    try:
        return compare_batches(_contenders(libraries, build, skipped), N, warmup=N // 2)
    finally:
        for app in apps.values():
            try:
                loop.run_until_complete(web_apps.asgi_shutdown(app))
            except Exception as e:  # a contender that never started has nothing to close
                print(f"  shutdown: {type(e).__name__}: {e}")
        loop.close()


def _asgi_contender(loop: asyncio.AbstractEventLoop, app: object) -> Callable[[int], float]:
    cookie = loop.run_until_complete(web_apps.asgi_call(app, "/start")).cookie
    done = [0]

    async def batch(n: int) -> float:
        first = done[0] + 1
        t = time.perf_counter()
        for i in range(first, first + n):
            body = (await web_apps.asgi_call(app, "/incr", cookie)).body
            if body != str(i).encode():
                raise Mismatch(f"request {i} answered {body!r}")
        elapsed = time.perf_counter() - t
        done[0] += n
        return elapsed

    return lambda n: loop.run_until_complete(batch(n))


RUNNERS: dict[str, Callable[[str, tuple[str, ...], Skipped], Rounds]] = {
    "flask": run_flask,
    "starlette": run_starlette,
    "django": run_django,
}


def run(frameworks: tuple[str, ...] = tuple(RUNNERS)) -> dict[str, Result]:
    """Every framework's contenders, alternating; keys and tables dropped afterwards."""
    out = {}
    ns = web_apps.namespace()
    try:
        for fw in frameworks:
            skipped: Skipped = {}
            rounds = RUNNERS[fw](ns, web_apps.FRAMEWORKS[fw], skipped)
            out[fw] = Result(fw, rounds, skipped)
    finally:
        web_apps.drop(ns)
    return out


def report(results: dict[str, Result]) -> str:
    parts = []
    for fw, result in results.items():
        part = f"### {NAMES[fw]}\n\n{result.table()}\n\n{result.ratio_table()}"
        if result.skipped:
            why = "; ".join(f"{LABELS[k]} ({v})" for k, v in result.skipped.items())
            part += f"\n\nNot run: {why}"
        parts.append(part)
    return "\n\n".join(parts)


def session_targets(results: dict[str, Result], failed: str | None = None) -> list[Target]:
    out = []
    for fw in ("flask", "starlette"):
        for ours, theirs, has_target in PAIRS[fw]:
            if not has_target:
                continue
            what = f"session cost in {NAMES[fw]}: {LABELS[ours]} / {LABELS[theirs]}"
            goal = f"<= {targets.SESSION_COST:g}x"
            found = [r for r in results.get(fw, Result(fw, {})).ratios() if r[:2] == (ours, theirs)]
            if not found:
                out.append(targets.not_run(what, goal, failed or "not measured"))
                continue
            value, spread = found[0][2], found[0][3]
            measured = f"{fmt(value, spread, 2)}x"
            out.append(Target(what, goal, measured, value <= targets.SESSION_COST))
    return out


def main(argv: list[str]) -> int:
    chosen = tuple(argv) or tuple(RUNNERS)
    unknown = [f for f in chosen if f not in RUNNERS]
    if unknown:
        print(f"unknown framework(s): {', '.join(unknown)}; choose from {', '.join(RUNNERS)}")
        return 2
    print(f"median µs per request (interquartile range), {ROUNDS} rounds of {N} requests\n")
    results = run(chosen)
    print(report(results))
    print()
    print(targets.render(session_targets(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
