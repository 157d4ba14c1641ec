"""The store contract, once, for stores that keep rows locally: memory, files, SQLite.

They differ only in how they fetch, save and delete a row inside a critical section (a
thread lock, a file lock, an SQLite write transaction). :class:`RowAccess` applies the
contract's rules (leases, fencing, versions, expiry) inside that section, in plain blocking
methods; ``RowStore`` and ``AsyncRowStore`` (``_rows_sync.py``, ``_rows_async.py``) call them,
directly or off the event loop.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Final, Literal

from ..contract import LOCKED, LockRequest, Meta, ReadResult, Stored, as_stored
from ..ids import check_storage_key
from ..locks import Row, check_write, holds, try_lock

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


class _NoRows(Rows):
    def get(self, key: str) -> Row | None:
        return None

    def put(self, key: str, row: Row, part: Part) -> None:
        raise RuntimeError("a transaction opened without create=True cannot save a row")

    def delete(self, key: str) -> None:
        pass


NO_ROWS: Final[Rows] = _NoRows()
"""What :meth:`RowAccess.transaction` gives when nothing was ever stored (no file, no table)."""


class RowAccess(abc.ABC):
    """The blocking half of a row store: a subclass supplies the four methods marked abstract.

    Every deadline and lease is checked against ``self.clock()`` (the store's clock).
    """

    blocks: bool = True
    """False when calls never wait (memory://): the async store then runs them inline."""
    clock: Callable[[], float]

    def setup(self) -> None:  # noqa: B027 (an optional hook)
        """Blocking part of ``open()``."""

    def teardown(self) -> None:  # noqa: B027 (an optional hook)
        """Blocking part of ``close()``."""

    @abc.abstractmethod
    def transaction(self, *, create: bool = False) -> AbstractContextManager[Rows]:
        """A critical section across every process and thread sharing the store.

        Without ``create``, a store that has nothing yet (no file, no table) may yield
        :data:`NO_ROWS` instead of creating anything: only writes create storage.
        """

    @abc.abstractmethod
    def delete_expired(self, now: float) -> int:
        """GC: delete rows whose deadline is at or before ``now``, checked at deletion."""

    def expired_batches(self, now: float) -> Iterator[int]:
        """GC batch by batch: yields each batch's count. This default is one batch.

        Each step is blocking work that the async store runs in a worker thread of its own,
        so a step keeps no thread state and holds no lock across a ``yield``.
        """
        yield self.delete_expired(now)

    @abc.abstractmethod
    def metas(self, now: float) -> list[Meta]:
        """Live records, for the admin operations."""

    def count_live(self, now: float) -> int:
        return len(self.metas(now))

    def _read(self, key: str, lock: LockRequest | None) -> ReadResult:
        check_storage_key(key)
        with self.transaction() as rows:
            row = rows.get(key)
            if row is None:
                return None
            now = self.clock()
            if lock is not None and row.expires_at > now:
                if not try_lock(row, lock, now):
                    return LOCKED
                rows.put(key, row, "lock")
            return Stored(row.payload, row.expires_at, row.version)

    def _read_many(self, keys: list[str]) -> list[Stored | None]:
        """read_many: the records under ``keys``, without locks (admin); a row per key here."""
        for key in keys:
            check_storage_key(key)  # every key checked before any is read
        return [as_stored(self._read(key, None)) for key in keys]

    def _write(
        self, key: str, payload: bytes, expires_at: float, expect: int | None, token: str | None
    ) -> int:
        check_storage_key(key)
        with self.transaction(create=True) as rows:
            row = rows.get(key)
            check_write(row, expect, token, self.clock())
            new = Row(payload, expires_at, (row.version if row else 0) + 1)
            if row is not None and token is None:  # keep a lock this writer does not own
                new.token, new.lock_until = row.token, row.lock_until
            rows.put(key, new, "all")
            return new.version

    def _update_timestamp(self, key: str, expires_at: float, token: str | None) -> None:
        check_storage_key(key)
        with self.transaction() as rows:
            row = rows.get(key)
            if row is None:
                return
            row.expires_at = max(row.expires_at, expires_at)
            if token is not None and holds(row, token):
                row.token, row.lock_until = None, 0.0
            rows.put(key, row, "expiry")

    def _release(self, key: str, token: str) -> None:
        check_storage_key(key)
        with self.transaction() as rows:
            row = rows.get(key)
            if row is not None and holds(row, token):
                row.token, row.lock_until = None, 0.0
                rows.put(key, row, "lock")

    def _destroy(self, key: str) -> None:
        check_storage_key(key)
        with self.transaction() as rows:
            rows.delete(key)

    def _validate_id(self, key: str) -> bool:
        check_storage_key(key)
        with self.transaction() as rows:
            row = rows.get(key)
            return row is not None and row.expires_at > self.clock()
