"""What each way of keeping sync and async stores in step costs per store call.

``python -m bench.mechanism``. The store layer had four mechanisms; this measures the three
that remained candidates for all stores, on a driver call that does nothing, so the figure is
the mechanism's own cost per call:

- plain code (what the generated sync twin and the async source are): one method call that
  calls the driver;
- an op runner (a generator yields each driver command; a sync and an async runner carry
  them out), as the memcached and mysql stores had;
- a worker thread (``asyncio.to_thread``) around a sync store, as the embedded stores had.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

N = 20_000
ROUNDS = 7


class Driver:
    def get(self, key: str) -> bytes:
        return b"x"


class AsyncDriver:
    async def get(self, key: str) -> bytes:
        return b"x"


@dataclass(slots=True)
class Get:
    key: str


def read_flow(key: str) -> Generator[Get, Any, bytes]:
    value: bytes = yield Get(key)
    return value


class Plain:
    def __init__(self) -> None:
        self.driver = Driver()

    def read(self, key: str) -> bytes:
        return self.driver.get(key)


class AsyncPlain:
    def __init__(self) -> None:
        self.driver = AsyncDriver()

    async def read(self, key: str) -> bytes:
        return await self.driver.get(key)


class Runner:
    def __init__(self) -> None:
        self.driver = Driver()

    def read(self, key: str) -> bytes:
        flow = read_flow(key)
        op = next(flow)
        try:
            while True:
                op = flow.send(self.driver.get(op.key))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


class AsyncRunner:
    def __init__(self) -> None:
        self.driver = AsyncDriver()

    async def read(self, key: str) -> bytes:
        flow = read_flow(key)
        op = next(flow)
        try:
            while True:
                op = flow.send(await self.driver.get(op.key))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def timed(fn: Callable[[], Any], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e9


async def atimed(fn: Callable[[], Any], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - t) / n * 1e9


async def measure() -> dict[str, list[float]]:
    plain, runner, aplain, arunner = Plain(), Runner(), AsyncPlain(), AsyncRunner()
    out: dict[str, list[float]] = {}
    for _ in range(ROUNDS):  # alternate, so load elsewhere hits every variant alike
        out.setdefault("sync, plain code", []).append(timed(lambda: plain.read("k"), N))
        out.setdefault("sync, op runner", []).append(timed(lambda: runner.read("k"), N))
        rows = {
            "async, plain code": lambda: aplain.read("k"),
            "async, op runner": lambda: arunner.read("k"),
            "async, worker thread": lambda: asyncio.to_thread(plain.read, "k"),
        }
        for name, fn in rows.items():
            n = N // 20 if "thread" in name else N
            out.setdefault(name, []).append(await atimed(fn, n))
    return out


def main() -> None:
    out = asyncio.run(measure())
    print(f"cost per store call, median of {ROUNDS} rounds (a driver call that does nothing)\n")
    print("| mechanism | ns per call |\n| --- | ---: |")
    for name, values in out.items():
        print(f"| {name} | {statistics.median(values):,.0f} |")


if __name__ == "__main__":
    main()
