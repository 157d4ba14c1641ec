"""The contract for stores built on :class:`~coatcheck.stores._rows.RowAccess`.

Each call is one piece of RowAccess's blocking work, handed to ``arun_blocking`` (see
:mod:`coatcheck.stores._blocking` for where it runs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ._blocking import arun_blocking
from ._rows import RowAccess
from .base import AsyncStore, LockRequest, Meta, ReadResult


class AsyncRowStore(RowAccess, AsyncStore):
    """A store built on :class:`~coatcheck.stores._rows.RowAccess`."""

    async def open(self) -> None:
        await arun_blocking(self, self.setup)

    async def close(self) -> None:
        await arun_blocking(self, self.teardown)

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return await arun_blocking(self, self._read, key, lock)

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        return await arun_blocking(self, self._write, key, payload, expires_at, expect, token)

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        await arun_blocking(self, self._update_timestamp, key, expires_at, token)

    async def release(self, key: str, token: str) -> None:
        await arun_blocking(self, self._release, key, token)

    async def destroy(self, key: str) -> None:
        await arun_blocking(self, self._destroy, key)

    async def gc(self) -> int:
        return await arun_blocking(self, self.delete_expired, self.clock())

    async def validate_id(self, key: str) -> bool:
        return await arun_blocking(self, self._validate_id, key)

    async def count(self) -> int:
        return await arun_blocking(self, self.count_live, self.clock())

    # unasync: for meta in metas: -> yield from metas
    async def scan(self) -> AsyncIterator[Meta]:
        metas = await arun_blocking(self, self.metas, self.clock())
        for meta in metas:
            yield meta  # unasync: drop
