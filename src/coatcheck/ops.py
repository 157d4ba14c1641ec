"""The operations a session flow yields: one typed class per store call, and a sleep.

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


Op = Read | Write | Touch | Release | Destroy | Gc | Sleep

__all__ = ["Destroy", "Gc", "Op", "Read", "Release", "Sleep", "Touch", "Write"]
