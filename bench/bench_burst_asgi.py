"""The AJAX burst under uvicorn: wall time of 8 concurrent requests sharing one session.

Each request does 50 ms of slow work (``asyncio.sleep``). The three cases of
tests/web/test_burst_asgi.py, timed from the first request sent to the last answer:

* early: exclusive lock, ``write_close()`` before the work: the work overlaps.
* held: exclusive lock held through the work: the requests run one after another.
* optimistic: no lock, each request writes a key of its own; 409s are counted, not retried.

Stores: see bench/burst.py (SQLite; Redis and PostgreSQL with and without notification).
Run: python -m bench.bench_burst_asgi (``BENCH_ROUNDS`` bursts per case, default 15).
"""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.web.burst_app import BURST, CASES, SLOW_WORK, fire, serve

from .burst import Results, check, measure, report


async def one_burst(client: httpx.AsyncClient, case: str) -> tuple[float, int]:
    """Seconds from the first request to the last answer, and how many got a 409."""
    cookie = (await client.get("/start")).headers["set-cookie"].split(";", 1)[0]
    t = time.perf_counter()
    statuses = await fire(client, cookie, case, range(BURST))
    return time.perf_counter() - t, check(statuses, case)


def run(base: str) -> Results:
    """Every case on one server, on one event loop and one connection pool."""
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(base_url=base, timeout=60)
    try:
        return measure(CASES, lambda case: loop.run_until_complete(one_burst(client, case)))
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


def main() -> None:
    title = (
        f"AJAX burst (uvicorn): {BURST} concurrent requests, {SLOW_WORK * 1000:.0f} ms work each"
    )
    report(title, serve, run, BURST, SLOW_WORK)


if __name__ == "__main__":
    main()
