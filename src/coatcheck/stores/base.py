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

One call is optional and for admin tools only (the ``coatcheck`` CLI): ``read_many(keys)``
reads several records in one go, without locks. The default here calls ``read`` once per
key; stores with a batch query (SQL ``IN``, a Redis pipeline) override it. Sessions never
use it.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from .. import ids
from ..contract import (
    LOCKED,
    MUST_CREATE,
    MUST_EXIST,
    LockRequest,
    Meta,
    ReadResult,
    Stored,
    as_stored,
)

# The contract's types are re-exported: a store author imports the whole contract from here.
__all__ = [
    "LOCKED",
    "MUST_CREATE",
    "MUST_EXIST",
    "AsyncStore",
    "LockRequest",
    "Meta",
    "ReadResult",
    "Store",
    "Stored",
    "aend_request",
    "as_stored",
    "end_request",
    "request_view",
]


class _Common:
    shared: bool = True
    """False for a store only one process can see (memory://)."""
    expires_itself: bool = False
    """True when the server drops expired records on its own (Redis, Memcached TTLs): the
    engine then never draws for GC, since :meth:`Store.gc` would have nothing to delete."""
    clock: Callable[[], float] = time.time
    """The app's clock, in Unix seconds: deadlines and leases are checked against it.

    A manager built with ``clock=`` sets it, so expiry and leases follow an injected clock
    end to end. Stores whose server enforces TTLs (Redis, Memcached) still expire records
    in real time.
    """

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

    def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The records under ``keys``, in the same order; None where there is none (admin).

        Optional: this default calls :meth:`read` once per key; a store that can read many
        rows in one round trip overrides it. No lock is taken or checked, and, as with
        :meth:`read`, a record past its ``expires_at`` may be returned or read as None. A key
        that is not a storage key raises ValueError, as it does in every other call.
        """
        return [as_stored(self.read(key)) for key in keys]

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

    async def read_many(self, keys: list[str]) -> list[Stored | None]:
        """:meth:`Store.read_many`: optional, admin only; this default reads one key at a time."""
        return [as_stored(await self.read(key)) for key in keys]

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


# --- the per-request hooks (optional) --------------------------------------------------------
# A store that opens something per request (a PHP-shaped handler, coatcheck.handlers) has
# ``request_scope()``, giving a view for one request, and ``end_request()``, ending it. Every
# caller (the session manager, the wrappers) goes through these, so none asks by hand.

AnyStore = TypeVar("AnyStore", Store, AsyncStore)


def request_view(store: AnyStore) -> AnyStore:
    """``store``'s view for one request, when it gives one (``request_scope``); else itself."""
    scope: Callable[[], AnyStore] | None = getattr(store, "request_scope", None)
    return store if scope is None else scope()


def end_request(store: Store) -> None:
    """PHP's order: a store that opens a handler per request closes it once the session is
    closed or a store call failed (``end_request``); other stores have nothing to end."""
    end = getattr(store, "end_request", None)
    if end is not None:
        end()


async def aend_request(store: AsyncStore) -> None:
    """:func:`end_request` for an asyncio store."""
    end = getattr(store, "end_request", None)
    if end is not None:
        await end()
