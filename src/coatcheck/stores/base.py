"""The store contract, modelled on PHP's SessionHandlerInterface.

A store moves bytes; it decides nothing. The session engine decides what to read, write,
touch or destroy, and passes the store storage keys (hashes of ids, never raw ids),
payloads, absolute expiry times and lock tokens.

PHP's six calls map as follows: ``open``/``close`` are :meth:`Store.open`/:meth:`Store.close`;
``read`` is :meth:`Store.read` (which also takes the lock, in one round trip where the
store can); ``write`` is :meth:`Store.write` (which also checks and releases the lock);
``destroy`` and ``gc`` keep their names. PHP's optional ``create_sid``, ``validateId``
and ``updateTimestamp`` are :meth:`Store.create_id`, :meth:`Store.validate_id` and
:meth:`Store.update_timestamp`. :class:`AsyncStore` has the same names, as coroutines.

Locks are leases: ``read(key, lock=LockRequest(token, lease))`` takes the lock only if no
other live lease holds it, and returns :data:`LOCKED` otherwise (the session layer waits
and retries). Writes, touches and releases carry the token; a write whose lease has
expired or been taken over raises :class:`~coatcheck.errors.LockLost` and changes nothing.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import ClassVar, Final

from .. import ids

MUST_CREATE: Final = 0
"""``expect`` value for a write that may only create a new record (a fresh id)."""
MUST_EXIST: Final = -1
"""``expect`` value for a write that may only replace an existing record, any version."""


@dataclass(frozen=True, slots=True)
class Stored:
    """What a read returns: the payload as written, its idle deadline and its version."""

    payload: bytes
    expires_at: float
    version: int


@dataclass(frozen=True, slots=True)
class LockRequest:
    """Take the session lock with this random token for ``lease`` seconds."""

    token: str
    lease: float


@dataclass(frozen=True, slots=True)
class Meta:
    """One session as the admin operations see it (no payload, no raw id)."""

    key: str
    expires_at: float
    size: int
    locked: bool


class _Locked(enum.Enum):
    LOCKED = "locked"


LOCKED: Final = _Locked.LOCKED
"""Returned by ``read`` when another request holds a live lease on the session."""

ReadResult = Stored | None | _Locked


class _Common:
    scheme: ClassVar[str] = ""
    shared: bool = True
    """False for a store only one process can see (memory://)."""

    def create_id(self, id_bytes: int) -> str:
        """PHP's create_sid: a new random id. Override only to add entropy, never to remove it."""
        return ids.new_id(id_bytes)


class Store(_Common, abc.ABC):
    """A synchronous session store."""

    def open(self) -> None:
        """Prepare connections or files; called once before first use. Idempotent."""

    def close(self) -> None:
        """Release connections and files."""

    @abc.abstractmethod
    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        """Return the record under ``key``, or None; with ``lock``, take the lock too.

        Records past their ``expires_at`` may be returned (the engine discards them) or
        dropped; never returned as live. Returns LOCKED if ``lock`` is given and another
        token holds an unexpired lease.
        """

    @abc.abstractmethod
    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        """Store ``payload``; return the new version (> 0).

        ``expect``: None writes unconditionally; MUST_CREATE only if no record exists;
        MUST_EXIST only if one exists; n > 0 only if the current version is n. Otherwise
        raise VersionMismatch and change nothing. ``token``: the lock must be held by this
        token with a live lease (else LockLost, nothing changed); it is released with the
        write.
        """

    @abc.abstractmethod
    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        """Move the idle deadline without rewriting the payload; release ``token``'s lock.

        A missing record stays missing: touching never resurrects a destroyed session.
        """

    @abc.abstractmethod
    def release(self, key: str, token: str) -> None:
        """Drop the lock if, and only if, ``token`` holds it (compare-and-delete)."""

    @abc.abstractmethod
    def destroy(self, key: str) -> None:
        """Delete the record and its lock. Succeeds when nothing is there."""

    @abc.abstractmethod
    def gc(self) -> int:
        """Delete expired records; return how many. Stores with native TTLs return 0."""

    @abc.abstractmethod
    def validate_id(self, key: str) -> bool:
        """True when a live record exists under ``key`` (PHP's validateId: "exists")."""

    @abc.abstractmethod
    def count(self) -> int:
        """Number of live records (admin)."""

    @abc.abstractmethod
    def scan(self) -> Iterator[Meta]:
        """Metadata of every live record (admin)."""

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStore(_Common, abc.ABC):
    """The asynchronous twin of :class:`Store`: the same names and meaning, as coroutines."""

    async def open(self) -> None:
        """Prepare connections; idempotent."""

    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult: ...

    @abc.abstractmethod
    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int: ...

    @abc.abstractmethod
    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None: ...

    @abc.abstractmethod
    async def release(self, key: str, token: str) -> None: ...

    @abc.abstractmethod
    async def destroy(self, key: str) -> None: ...

    @abc.abstractmethod
    async def gc(self) -> int: ...

    @abc.abstractmethod
    async def validate_id(self, key: str) -> bool: ...

    @abc.abstractmethod
    async def count(self) -> int: ...

    @abc.abstractmethod
    def scan(self) -> AsyncIterator[Meta]: ...

    async def __aenter__(self) -> AsyncStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
