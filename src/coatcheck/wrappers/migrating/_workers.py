"""Running one call per record, several at a time: threads for sync code, tasks for asyncio.

The copy's per-record work waits on two stores' round trips; running ``limit`` records at
once keeps both busy (and lets a SQL server commit several writes together). The two classes
have the same shape, so the copy is written once (``_async.py``) and generated for sync code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Workers:
    """``map(fn, items)`` on a pool of ``limit`` threads, in order; the first error is raised."""

    def __init__(self, limit: int) -> None:
        self._pool = ThreadPoolExecutor(max(1, limit), thread_name_prefix="coatcheck-copy")

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return list(self._pool.map(fn, items))

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class AsyncWorkers:
    """``await map(fn, items)`` with at most ``limit`` calls at once; on an error the others
    are cancelled and the first error is raised."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)

    async def map(self, fn: Callable[[T], Awaitable[R]], items: Iterable[T]) -> list[R]:
        gate = asyncio.Semaphore(self._limit)

        async def one(item: T) -> R:
            async with gate:
                return await fn(item)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(item)) for item in items]
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None
        return [task.result() for task in tasks]

    async def __aenter__(self) -> AsyncWorkers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass
