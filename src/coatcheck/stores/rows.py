"""One implementation of the store contract for stores that keep rows locally.

Memory, files and SQLite differ only in how they fetch, save and delete a row inside a
critical section (a thread lock, a file lock, an SQLite write transaction). The rules of
the contract (leases, fencing, versions, expiry) are applied here, once.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Literal

from ..locks import Row, check_write, holds, try_lock
from .base import LOCKED as LOCKED_
from .base import LockRequest, Meta, ReadResult, Store, Stored

Part = Literal["all", "lock", "expiry"]


class Rows(abc.ABC):
    """Row access inside one critical section."""

    @abc.abstractmethod
    def get(self, key: str) -> Row | None: ...

    @abc.abstractmethod
    def put(self, key: str, row: Row, part: Part) -> None:
        """Save ``row``; ``part`` says what changed, so a backend may save less."""

    @abc.abstractmethod
    def delete(self, key: str) -> None: ...


class RowStore(Store):
    """The contract in terms of :meth:`transaction`; subclasses supply the rows."""

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Rows]:
        """A critical section across every process and thread sharing the store."""

    @abc.abstractmethod
    def expired(self, now: float) -> list[str]:
        """Keys whose deadline has passed (read without the critical section)."""

    @abc.abstractmethod
    def metas(self, now: float) -> Iterator[Meta]:
        """Live records, for the admin operations."""

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        now = time.time()
        with self.transaction() as rows:
            row = rows.get(key)
            if row is None:
                return None
            if lock is not None and row.expires_at > now:
                if not try_lock(row, lock, now):
                    return LOCKED_
                rows.put(key, row, "lock")
            return Stored(row.payload, row.expires_at, row.version)

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        with self.transaction() as rows:
            row = rows.get(key)
            check_write(row, expect, token, time.time())
            new = Row(payload, expires_at, (row.version if row else 0) + 1)
            if row is not None and token is None:  # keep a lock this writer does not own
                new.token, new.lock_until = row.token, row.lock_until
            rows.put(key, new, "all")
            return new.version

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        with self.transaction() as rows:
            row = rows.get(key)
            if row is None:
                return
            row.expires_at = max(row.expires_at, expires_at)
            if token is not None and holds(row, token):
                row.token, row.lock_until = None, 0.0
            rows.put(key, row, "expiry")

    def release(self, key: str, token: str) -> None:
        with self.transaction() as rows:
            row = rows.get(key)
            if holds(row, token):
                assert row is not None
                row.token, row.lock_until = None, 0.0
                rows.put(key, row, "lock")

    def destroy(self, key: str) -> None:
        with self.transaction() as rows:
            rows.delete(key)

    def gc(self) -> int:
        now = time.time()
        removed = 0
        for key in self.expired(now):
            with self.transaction() as rows:
                row = rows.get(key)  # check again: it may have been renewed meanwhile
                if row is not None and row.expires_at <= now:
                    rows.delete(key)
                    removed += 1
        return removed

    def validate_id(self, key: str) -> bool:
        with self.transaction() as rows:
            row = rows.get(key)
            return row is not None and row.expires_at > time.time()

    def count(self) -> int:
        return sum(1 for _ in self.metas(time.time()))

    def scan(self) -> Iterator[Meta]:
        return self.metas(time.time())
