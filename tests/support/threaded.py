"""Test support: an async store that runs a sync store's calls in threads, so ASGI tests can
count the calls a real store receives. Production async stores are generated, never wrapped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from coatcheck.stores.base import AsyncStore, LockRequest, Meta, ReadResult, Store

T = TypeVar("T")


class ThreadedAsyncStore(AsyncStore):
    """Runs each call of a sync store in a worker thread (or inline, for memory)."""

    def __init__(self, store: Store, *, in_thread: bool = True) -> None:
        self.sync = store
        self._in_thread = in_thread
        self.shared = store.shared

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._in_thread:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return fn(*args, **kwargs)

    async def open(self) -> None:
        await self._call(self.sync.open)

    async def close(self) -> None:
        await self._call(self.sync.close)

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return await self._call(self.sync.read, key, lock)

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        return await self._call(
            self.sync.write, key, payload, expires_at, expect=expect, token=token
        )

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        await self._call(self.sync.update_timestamp, key, expires_at, token=token)

    async def release(self, key: str, token: str) -> None:
        await self._call(self.sync.release, key, token)

    async def destroy(self, key: str) -> None:
        await self._call(self.sync.destroy, key)

    async def gc(self) -> int:
        return await self._call(self.sync.gc)

    async def validate_id(self, key: str) -> bool:
        return await self._call(self.sync.validate_id, key)

    async def count(self) -> int:
        return await self._call(self.sync.count)

    async def scan(self) -> AsyncIterator[Meta]:
        for meta in await self._call(lambda: list(self.sync.scan())):
            yield meta
