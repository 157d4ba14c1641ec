"""Where coatcheck's per-request time goes in Flask and Starlette, beyond the store round trips.

``python -m bench.profile_web [flask|starlette ...]`` (needs pyinstrument, ``.[bench]``).
Drives the ``/incr`` view of bench/web_apps.py on coatcheck with Redis in process (as
bench/frameworks.py does) under pyinstrument's sampling profiler, then splits each request's
time into:

- the store round trips: everything under the driver (redis-py, hiredis, psycopg) and the
  wait for the socket (``select``/``epoll``, ``recv``, ``sendall``);
- the rest, Python: coatcheck, the framework, the view. Its top functions are listed by their
  own time (self time; and for coatcheck's functions, inclusive time less the round trips
  under them), as a share of the whole request and in µs per request.

The profiler slows Python down more than it slows the waits, so shares of Python are
somewhat inflated; the ranking is what to read.
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import web_apps
from .timing import QUICK, fmt, table

REQUESTS = 300 if QUICK else 800
INTERVAL = 0.0001  # seconds between samples
DRIVERS = ("/redis/", "/hiredis/", "/psycopg/", "/psycopg_pool/", "/async_timeout/")
WAITS = {"select", "poll", "recv", "recv_into", "sendall", "send", "read", "readinto", "_read"}
WAIT_FILES = ("/selectors.py", "/socket.py", "/ssl.py")
TOP = 15


@dataclass
class Profile:
    """Seconds per function (outside the store) and in the store, over ``requests``."""

    framework: str
    requests: int
    total: float = 0.0
    store: float = 0.0
    self_time: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    own_inclusive: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    packages: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    self_and_c: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def per_request(self, seconds: float) -> float:
        return seconds / self.requests * 1e6

    def share(self, seconds: float) -> str:
        return f"{seconds / self.total * 100:.1f}%"

    def tables(self) -> str:
        python = self.total - self.store
        head = [
            f"{self.framework}: {fmt(self.per_request(self.total))} µs per request sampled;",
            f"store round trips (driver + socket wait) {self.share(self.store)},",
            f"Python around them {self.share(python)} ({fmt(self.per_request(python))} µs)",
        ]
        own = sorted(self.self_and_c.items(), key=lambda kv: -kv[1])[:TOP]
        rows = [[name, self.share(t), fmt(self.per_request(t), digits=1)] for name, t in own]
        head_self = "function (self time + the C calls it makes, outside the store)"
        by_self = table([head_self, "share", "µs/request"], rows)
        ours = [kv for kv in self.self_and_c.items() if kv[0].startswith("coatcheck")]
        ours = sorted(ours, key=lambda kv: -kv[1])[:TOP]
        rows = [[name, self.share(t), fmt(self.per_request(t), digits=1)] for name, t in ours]
        by_self_ours = table(["coatcheck function (self + C calls)", "share", "µs/request"], rows)
        ours = [kv for kv in self.own_inclusive.items() if kv[0].startswith("coatcheck")]
        ours = sorted(ours, key=lambda kv: -kv[1])[:TOP]
        rows = [[name, self.share(t), fmt(self.per_request(t), digits=1)] for name, t in ours]
        by_incl = table(
            ["coatcheck function (inclusive, less the store)", "share", "µs/request"], rows
        )
        packages = self.packages
        rows = [
            [pkg, self.share(t), fmt(self.per_request(t), digits=1)]
            for pkg, t in sorted(packages.items(), key=lambda kv: -kv[1])
        ]
        rows.insert(
            0,
            [
                "store round trips",
                self.share(self.store),
                fmt(self.per_request(self.store), digits=1),
            ],
        )
        by_pkg = table(
            ["where (self time; C calls count for their caller)", "share", "µs/request"], rows
        )
        return "\n\n".join([" ".join(head), by_pkg, by_self, by_self_ours, by_incl])


def _package(name: str) -> str:
    """The package a function belongs to ("" for a C function: its caller's counts)."""
    module = name.split(":", 1)[0]
    if module.startswith("<built-in>") or not module:
        return ""
    top = module.split(".", 1)[0]
    if top in ("bench", "tests"):
        return "the benchmark's own driver and view"
    if top == "<string>":
        return "generated code (dataclass and namedtuple methods)"
    if top.startswith("<") or top in _STDLIB:
        return "Python's standard library (asyncio, contextlib, ...)"
    return top


_STDLIB = set(sys.stdlib_module_names)


def _where(frame: Any) -> str:
    path = frame.file_path or ""
    module = path
    for marker in ("/site-packages/", "/src/", "/lib/python3.11/", "/work/main/"):
        if marker in path:
            module = path.split(marker, 1)[1]
            break
    module = module.removesuffix(".py").replace("/", ".")
    cls = f"{frame.class_name}." if getattr(frame, "class_name", None) else ""
    return f"{module}:{cls}{frame.function}"


def _is_driver(frame: Any) -> bool:
    path = frame.file_path or ""
    if any(d in path for d in DRIVERS):
        return True
    return frame.function in WAITS and (path.endswith(WAIT_FILES) or not path)


def _walk(profile: Profile, frame: Any, seen: frozenset[str], caller: tuple[str, str]) -> float:
    """Add ``frame``'s subtree to ``profile``; returns the store time inside it.

    ``caller`` is the package and function of the nearest Python caller: a C function's time
    (orjson, hashlib, ``isinstance``) also counts for the function and package that called it.
    """
    if _is_driver(frame):
        profile.store += frame.time
        return float(frame.time)
    name = _where(frame)
    package = _package(name)
    here = (package, name) if package else caller
    store = 0.0
    for child in frame.children:
        if not child.is_synthetic:  # "[self]"/"[await]": already in total_self_time
            store += _walk(profile, child, seen | {name}, here)
    profile.self_time[name] += frame.total_self_time
    profile.packages[here[0]] += frame.total_self_time
    profile.self_and_c[here[1]] += frame.total_self_time
    if name not in seen:  # recursion: count the outermost call only
        profile.own_inclusive[name] += frame.time - store
    return store


def profiled(framework: str, drive: Callable[[], None], requests: int) -> Profile:
    from pyinstrument import Profiler

    profiler = Profiler(interval=INTERVAL, async_mode="disabled")
    profiler.start()
    drive()
    session = profiler.stop()
    root = session.root_frame()
    profile = Profile(framework, requests)
    if root is not None:
        profile.total = root.time
        _walk(profile, root, frozenset(), ("", ""))
    return profile


def profile_flask(ns: str, requests: int = REQUESTS) -> Profile:
    app = web_apps.flask_app("coatcheck-redis", ns)
    cookie = web_apps.wsgi_call(app, "/start").cookie
    for _ in range(100):  # warm: connections, scripts, caches
        web_apps.wsgi_call(app, "/incr", cookie)

    def drive() -> None:
        for _ in range(requests):
            web_apps.wsgi_call(app, "/incr", cookie)

    return profiled("Flask", drive, requests)


def profile_starlette(ns: str, requests: int = REQUESTS) -> Profile:
    app = web_apps.starlette_app("coatcheck-redis", ns)
    loop = asyncio.new_event_loop()
    try:
        cookie = loop.run_until_complete(web_apps.asgi_call(app, "/start")).cookie

        async def many(n: int) -> None:
            for _ in range(n):
                await web_apps.asgi_call(app, "/incr", cookie)

        loop.run_until_complete(many(100))
        profile = profiled("Starlette", lambda: loop.run_until_complete(many(requests)), requests)
        loop.run_until_complete(web_apps.asgi_shutdown(app))
        return profile
    finally:
        loop.close()


PROFILERS = {"flask": profile_flask, "starlette": profile_starlette}


def run(frameworks: tuple[str, ...] = tuple(PROFILERS)) -> list[Profile]:
    ns = web_apps.namespace()
    try:
        return [PROFILERS[fw](ns) for fw in frameworks]
    finally:
        web_apps.drop(ns)


def main(argv: list[str]) -> int:
    chosen = tuple(argv) or tuple(PROFILERS)
    for profile in run(chosen):
        print(profile.tables())
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
