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
from dataclasses import dataclass
from typing import Protocol

from .contract import LockRequest, ReadResult
from .stores.base import AsyncStore, Store


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


Op = Read | Write | Touch | Release | Destroy | Gc | Sleep | WaitRelease

__all__ = [
    "AsyncHandsOver",
    "Destroy",
    "Gc",
    "HandsOver",
    "Op",
    "Read",
    "Release",
    "Sleep",
    "Touch",
    "WaitRelease",
    "Write",
]
