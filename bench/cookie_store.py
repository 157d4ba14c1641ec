"""cookie:// against a redis:// session, per request: bytes on the wire, round trips, time.

One request = load the session the browser's cookie names, ``n += 1``, save, and take the
cookie the response sets (a browser sends it back next time). Three stores, in one run:

- ``cookie://``: the session sealed into the cookie, no server at all;
- ``cookie://`` with a revocation list on Redis: one ``validate_id`` per load;
- ``redis://``: the session on the server, the cookie only its id (read+lock, write).

Columns: bytes of the ``Cookie`` header value the browser sends and of the ``Set-Cookie``
value the server answers, store round trips per request (counted, not assumed), and the
median µs of one load+save cycle with its interquartile range over alternating rounds
(bench/timing.py). Two session sizes: a login (user id, CSRF token) and one with about
1 KB of data. Run: ``python -m bench.cookie_store`` (COATCHECK_TEST_REDIS overrides the
server; ``BENCH_QUICK=1`` a smoke run).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from coatcheck import Client, Config, SessionManager
from coatcheck.crypto import new_key
from coatcheck.stores.cookie import CookieStore
from coatcheck.stores.redis import RedisStore, parse
from tests.support.redis import drop_namespace

from .timing import ROUNDS, compare, cycles, fmt, iqr, table

URL = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
CONFIG = Config(gc_probability=0, touch_threshold=60)
CLIENT = Client(user_agent="Mozilla/5.0 (X11; Linux x86_64) bench")
N = cycles(200)
SIZES = {
    "login": {"user_id": 4242, "csrf": "c" * 43},
    "~1 KB": {"user_id": 4242, "csrf": "c" * 43, "cart": [f"sku-{i:05d}" for i in range(60)]},
}
_COUNTED = ("read", "write", "update_timestamp", "release", "destroy", "validate_id", "gc")


class CountingRedis(RedisStore):
    """A real Redis store that counts the calls it makes (each one a round trip)."""

    calls = 0

    def __getattribute__(self, name: str) -> Any:
        if name in _COUNTED:
            type(self).calls += 1
        return super().__getattribute__(name)


def counting(url: str) -> CountingRedis:
    cls = type("Counted", (CountingRedis,), {"calls": 0})
    return cls(parse(url))


class Browser:
    """One browser on one store: keeps the cookie the last response set."""

    def __init__(self, manager: SessionManager, data: dict[str, Any]) -> None:
        self.manager = manager
        s = manager.begin(client=CLIENT)
        s.update(data)
        s["n"] = 0
        s.write_close()
        self.cookie = self._taken(s) or ""
        self.sent = self.received = 0

    def _taken(self, s: Any) -> str | None:
        action = s.cookie()
        line = s.set_cookie_header()
        self.received = len(line or "")  # 0: no Set-Cookie (the browser keeps its cookie)
        return None if action is None else str(action.value)

    def request(self) -> None:
        self.sent = len(f"{self.manager.config.cookie_name}={self.cookie}")
        s = self.manager.start(self.cookie, client=CLIENT)
        s["n"] += 1
        s.write_close()
        self.cookie = self._taken(s) or self.cookie


def main() -> None:
    keys = [new_key()]
    prefix = f"{URL}{'&' if '?' in URL else '?'}prefix=bench_cookie_{uuid.uuid4().hex[:8]}:"
    revocations, server = counting(prefix), counting(prefix)
    stores: dict[str, tuple[Any, CountingRedis | None]] = {
        "cookie://": (CookieStore(keys), None),
        "cookie:// + revocations on Redis": (
            CookieStore(keys, revocations=revocations),
            revocations,
        ),
        "redis://": (server, server),
    }
    started = time.perf_counter()
    rows = []
    try:
        for size, data in SIZES.items():
            browsers = {
                name: Browser(SessionManager(store, CONFIG), data)
                for name, (store, _) in stores.items()
            }
            trips = {}
            for name, browser in browsers.items():
                counter = stores[name][1]
                before = 0 if counter is None else type(counter).calls
                browser.request()
                trips[name] = 0 if counter is None else type(counter).calls - before
            fns: dict[str, Callable[[], object]] = {n: b.request for n, b in browsers.items()}
            rounds = compare(fns, N)
            for name, browser in browsers.items():
                times = rounds[name]
                rows.append(
                    [
                        name,
                        size,
                        str(browser.sent),
                        str(browser.received),
                        str(trips[name]),
                        fmt(statistics.median(times), iqr(times)),
                    ]
                )
    finally:
        for store, _ in stores.values():
            store.close()
        drop_namespace(prefix)
    head = ["store", "session", "browser sends (B)", "server sends (B)", "round trips"]
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"# cookie:// against redis:// ({python}, {ROUNDS} rounds x {N} requests, {URL})\n")
    print(table([*head, "load+save µs, median (IQR)"], rows, right_from=2))
    print(f"\n({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
