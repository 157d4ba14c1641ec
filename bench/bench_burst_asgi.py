"""The AJAX burst under uvicorn: wall time of 8 concurrent requests sharing one session.

Each request does 50 ms of slow work (``asyncio.sleep``). The three cases of
tests/web/test_burst_asgi.py, timed from the first request sent to the last answer:

* early: exclusive lock, ``write_close()`` before the work: the work overlaps.
* held: exclusive lock held through the work: the requests run one after another.
* optimistic: no lock, each request writes a key of its own; 409s are counted, not retried.

Stores: SQLite (a file in a temp dir) and Redis when reachable (``COATCHECK_TEST_REDIS``).
Run: python -m bench.bench_burst_asgi (``BENCH_ROUNDS`` bursts per case, default 15).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from urllib.parse import urlsplit

import httpx

from tests.services import REDIS_URL, reachable
from tests.web.burst_app import BURST, CASES, SLOW_WORK, fire, serve

from .timing import ROUNDS


async def one_burst(client: httpx.AsyncClient, case: str) -> tuple[float, int]:
    """Seconds from the first request to the last answer, and how many got a 409."""
    cookie = (await client.get("/start")).headers["set-cookie"].split(";", 1)[0]
    t = time.perf_counter()
    statuses = await fire(client, cookie, case, range(BURST))
    elapsed = time.perf_counter() - t
    if set(statuses) - {200, 409}:
        raise RuntimeError(f"unexpected statuses in a {case} burst: {statuses}")
    return elapsed, statuses.count(409)


async def measure(base: str) -> dict[str, tuple[list[float], int]]:
    out: dict[str, tuple[list[float], int]] = {case: ([], 0) for case in CASES}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for case in CASES:
            await one_burst(client, case)  # warm-up: connections, tables, scripts
        for _ in range(ROUNDS):
            for case in CASES:  # alternate, so load from elsewhere hits every case alike
                elapsed, conflicts = await one_burst(client, case)
                times, total = out[case]
                times.append(elapsed)
                out[case] = (times, total + conflicts)
    return out


def main() -> None:
    stores = {"sqlite": f"sqlite:///{tempfile.mkdtemp()}/sessions.db"}
    redis = urlsplit(REDIS_URL)
    if reachable(redis.hostname or "127.0.0.1", redis.port or 6379):
        stores["redis"] = f"{REDIS_URL}?prefix=cc_bench_{uuid.uuid4().hex[:8]}:"
    print(f"AJAX burst: {BURST} concurrent requests, {SLOW_WORK * 1000:.0f} ms work each,")
    print(f"{ROUNDS} bursts per case; ms from first request sent to last answer")
    print(f"{'store':8} {'case':11} {'median':>8} {'min':>8} {'max':>8} {'409s':>6}")
    for name, url in stores.items():
        try:
            with serve(url) as base:
                results = asyncio.run(measure(base))
        finally:
            if name == "redis":
                from coatcheck.stores.redis import drop_namespace

                drop_namespace(url)
        for case, (times, conflicts) in results.items():
            ms = [t * 1000 for t in times]
            print(
                f"{name:8} {case:11} {statistics.median(ms):8.1f} {min(ms):8.1f}"
                f" {max(ms):8.1f} {conflicts:6d}"
            )
    print(
        f"(serial floor: {BURST * SLOW_WORK * 1000:.0f} ms; fully parallel floor:"
        f" {SLOW_WORK * 1000:.0f} ms;)"
    )


if __name__ == "__main__":
    main()
