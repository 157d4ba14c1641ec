"""The operations a session flow yields: one typed class per store call, and two waits.

Flows (:mod:`coatcheck.session`) are written once, as generators of these operations; a
sync runner and an async runner carry them out. Each operation knows the store method it
stands for, so mypy checks every call's arguments and result.

Not frozen: a few are built per request, and a frozen dataclass's ``__init__`` costs about
three times as much. Nothing changes one after it is yielded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .contract import LockRequest, ReadResult, Stored
from .stores.base import AsyncStore, Store, aend_request, end_request


@dataclass(slots=True)
class Read:
    """``Store.read``: the record, taking the lock when ``lock`` is given."""

    key: str
    lock: LockRequest | None = None

    def run(self, store: Store) -> ReadResult:
        return store.read(self.key, self.lock)

    async def arun(self, store: AsyncStore) -> ReadResult:
        return await store.read(self.key, self.lock)


@dataclass(slots=True)
class Write:
    """``Store.write``: the new version."""

    key: str
    payload: bytes
    expires_at: float
    expect: int | None
    token: str | None

    def run(self, store: Store) -> int:
        return store.write(
            self.key, self.payload, self.expires_at, expect=self.expect, token=self.token
        )

    async def arun(self, store: AsyncStore) -> int:
        return await store.write(
            self.key, self.payload, self.expires_at, expect=self.expect, token=self.token
        )


@dataclass(slots=True)
class Touch:
    """``Store.update_timestamp``."""

    key: str
    expires_at: float
    token: str | None

    def run(self, store: Store) -> None:
        store.update_timestamp(self.key, self.expires_at, token=self.token)

    async def arun(self, store: AsyncStore) -> None:
        await store.update_timestamp(self.key, self.expires_at, token=self.token)


@dataclass(slots=True)
class Release:
    """``Store.release``."""

    key: str
    token: str

    def run(self, store: Store) -> None:
        store.release(self.key, self.token)

    async def arun(self, store: AsyncStore) -> None:
        await store.release(self.key, self.token)


@dataclass(slots=True)
class Destroy:
    """``Store.destroy``."""

    key: str

    def run(self, store: Store) -> None:
        store.destroy(self.key)

    async def arun(self, store: AsyncStore) -> None:
        await store.destroy(self.key)


@dataclass(slots=True)
class Gc:
    """``Store.gc``: how many records were removed."""

    def run(self, store: Store) -> int:
        return store.gc()

    async def arun(self, store: AsyncStore) -> int:
        return await store.gc()


@dataclass(slots=True)
class Sleep:
    """Wait before trying again (a lock wait, an optimistic retry)."""

    seconds: float

    def run(self, store: Store) -> None:
        time.sleep(self.seconds)

    async def arun(self, store: AsyncStore) -> None:
        await asyncio.sleep(self.seconds)


class HandsOver(Protocol):
    """A store that can wake a waiter when a lock is released (Redis, PostgreSQL).

    ``wait_for_release(key, timeout)`` sleeps until the lock on ``key`` is released, its
    lease runs out, or ``timeout`` seconds pass, and returns True; or returns False at once
    when it cannot tell right now (no listener): the caller then polls. It never takes the
    lock: the caller reads again either way. Optional: stores without it are polled.
    """

    def wait_for_release(self, key: str, timeout: float) -> bool: ...


class AsyncHandsOver(Protocol):
    """The asyncio twin of :class:`HandsOver`."""

    async def wait_for_release(self, key: str, timeout: float) -> bool: ...


@dataclass(slots=True)
class WaitRelease:
    """Wait for another request to release the lock on ``key``, then read again.

    A store with ``wait_for_release`` (:class:`HandsOver`) is asked to wake the waiter when
    the lock is released, for at most ``timeout`` seconds; any other store, or one whose
    notices are down, is polled: a sleep of ``poll`` seconds (the backoff delay). The result
    says which happened and how many seconds it took (``time.monotonic``).
    """

    key: str
    poll: float
    timeout: float

    def run(self, store: Store) -> tuple[bool, float]:
        wait = getattr(store, "wait_for_release", None)
        if wait is not None:
            start = time.monotonic()
            if wait(self.key, self.timeout):
                return True, time.monotonic() - start
        time.sleep(self.poll)
        return False, self.poll

    async def arun(self, store: AsyncStore) -> tuple[bool, float]:
        wait = getattr(store, "wait_for_release", None)
        if wait is not None:
            start = time.monotonic()
            if await wait(self.key, self.timeout):
                return True, time.monotonic() - start
        await asyncio.sleep(self.poll)
        return False, self.poll


@dataclass(slots=True)
class ReadMany:
    """``Store.read_many``: several records in one go, no locks (listings)."""

    keys: list[str]

    def run(self, store: Store) -> list[Stored | None]:
        return store.read_many(self.keys)

    async def arun(self, store: AsyncStore) -> list[Stored | None]:
        return await store.read_many(self.keys)


Op = Read | ReadMany | Write | Touch | Release | Destroy | Gc | Sleep | WaitRelease

T = TypeVar("T")
Flow = Generator[Op, Any, T]
"""A flow: a generator of operations, given each one's result; its return value is the
flow's. Flows are written once; :func:`run_sync` and :func:`run_async` carry them out."""


def run_sync(store: Store, flow: Flow[T]) -> T:
    """Carry out a flow's operations against a sync store; its return value."""
    try:
        op = next(flow)
        while True:
            try:
                result: Any = op.run(store)
            except BaseException as e:
                op = flow.throw(e)
            else:
                op = flow.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except BaseException:
        end_request(store)
        raise


async def run_async(store: AsyncStore, flow: Flow[T]) -> T:
    """Carry out a flow's operations against an asyncio store."""
    try:
        op = next(flow)
        while True:
            try:
                result: Any = await op.arun(store)
            except BaseException as e:
                op = flow.throw(e)
            else:
                op = flow.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except BaseException:
        await aend_request(store)
        raise


__all__ = [
    "AsyncHandsOver",
    "Destroy",
    "Flow",
    "Gc",
    "HandsOver",
    "Op",
    "Read",
    "ReadMany",
    "Release",
    "Sleep",
    "Touch",
    "WaitRelease",
    "Write",
    "aend_request",
    "end_request",
    "run_async",
    "run_sync",
]
