"""PHP's SessionHandlerInterface, in Python: the base classes a ported handler subclasses.

The method names and arguments are PHP's (``open(save_path, name)``, ``read(id)``,
``write(id, data)``, ``gc(max_lifetime)``, ...), so a PHP handler ports line by line.
Three methods are coatcheck's additions, all optional: ``lock``/``unlock`` (a short mutual
exclusion per id, e.g. MySQL's GET_LOCK) and ``ids`` (every stored id, for exact GC and the
admin commands). :class:`~coatcheck.handlers.HandlerStore` turns a handler into a store.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar, TypeVarTuple

from .. import ids as _ids

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class SessionHandler(abc.ABC):
    """PHP's ``SessionHandlerInterface`` (with ``SessionIdInterface`` and
    ``SessionUpdateTimestampHandlerInterface``), for blocking code.

    ``id`` is always coatcheck's storage key, the SHA-256 of the session id as 64 hex
    characters: a handler never sees a session id, so its table hands out no live session.
    ``data`` is text: coatcheck's metadata line, then the session record. Store it as given
    and return it unchanged from :meth:`read`.

    One handler object serves one request at a time, as in a PHP worker: the store makes
    them with the factory it was given and reuses closed ones.
    """

    def open(self, save_path: str, name: str) -> bool:
        """Called first in every request (PHP: session_start). Return False if unusable."""
        return True

    def close(self) -> bool:
        """Called last in every request, also when it failed. Free per-request resources."""
        return True

    @abc.abstractmethod
    def read(self, id: str) -> str:
        """The data last written under ``id``, or ``""`` when there is none."""

    @abc.abstractmethod
    def write(self, id: str, data: str) -> bool:
        """Store ``data`` under ``id``, replacing what is there (an upsert)."""

    @abc.abstractmethod
    def destroy(self, id: str) -> bool:
        """Delete what is stored under ``id``; True also when nothing was there."""

    @abc.abstractmethod
    def gc(self, max_lifetime: int) -> int | bool:
        """Delete what you consider expired; return how many, or False on failure.

        ``max_lifetime`` is PHP's session.gc_maxlifetime in seconds. coatcheck checks each
        session's own deadline on every read, and deletes expired sessions itself when the
        handler has :meth:`ids`; this is the handler's own cleanup.
        """

    # --- PHP's optional methods ---------------------------------------------------------

    def create_sid(self) -> str:
        """A new session id (PHP's create_sid): 256 random bits unless overridden.

        An override must return ``secrets.token_urlsafe(n)`` for the configured
        ``Config.id_bytes`` (32 unless changed), or starting a session raises ConfigError.
        It is called outside open/close and must not use storage: coatcheck checks a new id
        against the store itself, with a write that only creates.
        """
        return _ids.new_id()

    def validate_id(self, id: str) -> bool:
        """True when something is stored under ``id`` (PHP: validateId). Optional: without it
        coatcheck reads; with it, a False answer saves the read."""
        return self.read(id) != ""

    def update_timestamp(self, id: str, data: str) -> bool:
        """Store ``data`` when only coatcheck's metadata line changed (a touch, a lock taken
        or released). Unlike PHP's, ``data`` differs from what was read: it must be stored,
        or the touch is lost. Optional: the default calls :meth:`write`."""
        return self.write(id, data)

    # --- coatcheck's additions ----------------------------------------------------------

    def lock(self, id: str, timeout: float) -> bool:
        """Take a mutual-exclusion lock on ``id``, waiting up to ``timeout`` seconds; False if
        not granted. Optional, with :meth:`unlock`: it makes coatcheck's locks, versions and
        fencing exact (see docs/custom-store.md). It is held for one store call, not for the
        request, and must be freed if this process dies (GET_LOCK is, with its connection)."""
        raise NotImplementedError

    def unlock(self, id: str) -> bool:
        """Free the lock :meth:`lock` took."""
        raise NotImplementedError

    def ids(self) -> Iterable[str]:
        """Every id stored. Optional: coatcheck's exact GC, ``count`` and ``scan`` need it."""
        raise NotImplementedError


class AsyncSessionHandler(abc.ABC):
    """:class:`SessionHandler` for asyncio: the same methods, as coroutines.

    ``create_sid`` stays a plain method: coatcheck asks for ids synchronously.
    """

    async def open(self, save_path: str, name: str) -> bool:
        return True

    async def close(self) -> bool:
        return True

    @abc.abstractmethod
    async def read(self, id: str) -> str: ...

    @abc.abstractmethod
    async def write(self, id: str, data: str) -> bool: ...

    @abc.abstractmethod
    async def destroy(self, id: str) -> bool: ...

    @abc.abstractmethod
    async def gc(self, max_lifetime: int) -> int | bool: ...

    def create_sid(self) -> str:
        return _ids.new_id()

    async def validate_id(self, id: str) -> bool:
        return await self.read(id) != ""

    async def update_timestamp(self, id: str, data: str) -> bool:
        return await self.write(id, data)

    async def lock(self, id: str, timeout: float) -> bool:
        raise NotImplementedError

    async def unlock(self, id: str) -> bool:
        raise NotImplementedError

    async def ids(self) -> Iterable[str]:
        raise NotImplementedError


class Threaded(AsyncSessionHandler):
    """A blocking handler driven from asyncio, in a worker thread of its own.

    Its own thread, not a shared pool: a handler waiting in ``lock()`` (GET_LOCK blocks on
    the server) must not hold up the thread another handler needs to release that lock.
    """

    def __init__(self, inner: SessionHandler) -> None:
        self.inner = inner
        self._worker: ThreadPoolExecutor | None = None

    async def _run(self, call: Callable[[*Ts], T], *args: *Ts) -> T:
        if self._worker is None:  # ends with the handler: the executor stops when collected
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="coatcheck-handler")
        return await asyncio.get_running_loop().run_in_executor(self._worker, call, *args)

    async def open(self, save_path: str, name: str) -> bool:
        return await self._run(self.inner.open, save_path, name)

    async def close(self) -> bool:
        return await self._run(self.inner.close)

    async def read(self, id: str) -> str:
        return await self._run(self.inner.read, id)

    async def write(self, id: str, data: str) -> bool:
        return await self._run(self.inner.write, id, data)

    async def destroy(self, id: str) -> bool:
        return await self._run(self.inner.destroy, id)

    async def gc(self, max_lifetime: int) -> int | bool:
        return await self._run(self.inner.gc, max_lifetime)

    def create_sid(self) -> str:
        return self.inner.create_sid()

    async def validate_id(self, id: str) -> bool:
        return await self._run(self.inner.validate_id, id)

    async def update_timestamp(self, id: str, data: str) -> bool:
        return await self._run(self.inner.update_timestamp, id, data)

    async def lock(self, id: str, timeout: float) -> bool:
        return await self._run(self.inner.lock, id, timeout)

    async def unlock(self, id: str) -> bool:
        return await self._run(self.inner.unlock, id)

    async def ids(self) -> Iterable[str]:
        return await self._run(lambda: list(self.inner.ids()))


AnyHandler = SessionHandler | AsyncSessionHandler


def as_async(handler: AnyHandler) -> AsyncSessionHandler:
    """``handler`` as an asyncio handler: a blocking one runs in worker threads."""
    return Threaded(handler) if isinstance(handler, SessionHandler) else handler


def as_sync(handler: SessionHandler) -> SessionHandler:
    """The sync twin of :func:`as_async` (scripts/unasync.py maps one to the other)."""
    return handler


def implements(handler: AnyHandler, method: str) -> bool:
    """Whether ``handler``'s class overrides the optional ``method`` of its base class."""
    inner: AnyHandler = handler.inner if isinstance(handler, Threaded) else handler
    base = SessionHandler if isinstance(inner, SessionHandler) else AsyncSessionHandler
    return getattr(type(inner), method) is not getattr(base, method)
