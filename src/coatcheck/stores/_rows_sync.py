# Generated from _rows_async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The contract for stores built on :class:`~coatcheck.stores._rows.RowAccess`.

Each call is one piece of RowAccess's blocking work, handed to ``run_blocking`` (see
:mod:`coatcheck.stores._blocking` for where it runs).
"""

from __future__ import annotations

from collections.abc import Iterator

from ._blocking import run_blocking
from ._rows import RowAccess
from .base import LockRequest, Meta, ReadResult, Store, Stored


class RowStore(RowAccess, Store):
    """A store built on :class:`~coatcheck.stores._rows.RowAccess`."""

    def open(self) -> None:
        run_blocking(self, self.setup)

    def close(self) -> None:
        run_blocking(self, self.teardown)

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return run_blocking(self, self._read, key, lock)

    def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The records under ``keys``, without locks (admin): one blocking call for all."""
        return run_blocking(self, self._read_many, keys)

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        return run_blocking(self, self._write, key, payload, expires_at, expect, token)

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        run_blocking(self, self._update_timestamp, key, expires_at, token)

    def release(self, key: str, token: str) -> None:
        run_blocking(self, self._release, key, token)

    def destroy(self, key: str) -> None:
        run_blocking(self, self._destroy, key)

    def gc(self) -> int:
        return run_blocking(self, self.delete_expired, self.clock())

    def gc_batches(self) -> Iterator[int]:
        """:meth:`gc` batch by batch: yields each batch's count of deleted sessions.

        Each batch is one step of the blocking :meth:`expired_batches`, a call of its own."""
        yield from self.expired_batches(self.clock())

    def validate_id(self, key: str) -> bool:
        return run_blocking(self, self._validate_id, key)

    def count(self) -> int:
        return run_blocking(self, self.count_live, self.clock())

    def scan(self) -> Iterator[Meta]:
        metas = run_blocking(self, self.metas, self.clock())
        yield from metas
