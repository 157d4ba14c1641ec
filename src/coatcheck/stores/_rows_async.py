"""The contract for stores built on :class:`~coatcheck.stores._rows.RowAccess`.

Each call is one piece of RowAccess's blocking work, handed to ``arun_blocking`` (see
:mod:`coatcheck.stores._blocking` for where it runs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ._blocking import arun_blocking
from ._rows import RowAccess
from .base import AsyncStore, LockRequest, Meta, ReadResult, Stored


class AsyncRowStore(RowAccess, AsyncStore):
    """A store built on :class:`~coatcheck.stores._rows.RowAccess`."""

    async def open(self) -> None:
        await arun_blocking(self, self.setup)

    async def close(self) -> None:
        await arun_blocking(self, self.teardown)

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return await arun_blocking(self, self._read, key, lock)

    async def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The records under ``keys``, without locks (admin): one blocking call for all."""
        return await arun_blocking(self, self._read_many, keys)

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

    # unasync: batches = self.expired_batches -> yield from self.expired_batches
    async def gc_batches(self) -> AsyncIterator[int]:
        """:meth:`gc` batch by batch: yields each batch's count of deleted sessions.

        Each batch is one step of the blocking :meth:`expired_batches`, a call of its own."""
        batches = self.expired_batches(self.clock())
        while (n := await arun_blocking(self, next, batches, None)) is not None:  # unasync: drop
            yield n  # unasync: drop

    async def validate_id(self, key: str) -> bool:
        return await arun_blocking(self, self._validate_id, key)

    async def count(self) -> int:
        return await arun_blocking(self, self.count_live, self.clock())

    # unasync: for meta in metas: -> yield from metas
    async def scan(self) -> AsyncIterator[Meta]:
        metas = await arun_blocking(self, self.metas, self.clock())
        for meta in metas:
            yield meta  # unasync: drop
