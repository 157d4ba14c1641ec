# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The store contract on top of a PHP-shaped handler, written once: this asyncio source is
the truth, and its blocking twin (``_sync.py``) is generated from it by scripts/unasync.py.

A handler keeps one string per id; the contract needs a deadline, a version and a lock
lease beside each payload, and atomic check-and-set steps. So the store keeps those in a
metadata line at the head of the string (:mod:`._envelope`) and does each check-and-set
read, check, write, inside a short critical section per session: the handler's own
``lock``/``unlock`` (MySQL's GET_LOCK), or a lease in another coatcheck store (``locks=``).
Without either, only ``lock_mode='none'`` works, and locking modes raise ConfigError.

PHP's order: a session's store calls run between one ``open(save_path, name)`` and one
``close()`` of a handler of its own. The session layer asks for that with
:meth:`HandlerStore.request_scope` and ends it with ``end_request()`` when the session
closes, also after an error; a call made on the store itself opens and closes around it.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .. import ids
from ..config import check_seconds
from ..errors import CoatcheckError, ConfigError, LockTimeout, StoreUnavailable, VersionMismatch
from ..locks import Row, backoff, check_write, holds, new_token, try_lock
from ..stores.base import LOCKED, MUST_CREATE, LockRequest, Meta, ReadResult, Store, Stored
from . import _envelope as envelope
from ._handler import SessionHandler, as_sync, implements

log = logging.getLogger("coatcheck.handlers")

NO_LOCK = (
    "this session handler has no lock, and lock_mode 'exclusive' and 'optimistic' need one "
    "(coatcheck never fakes a lock): implement lock() and unlock() on the handler (MySQL: "
    "GET_LOCK and RELEASE_LOCK on its connection), pass a coatcheck store for the locks "
    "(HandlerStore(..., locks=open_store('redis://...'))), or choose Config(lock_mode='none'), "
    "where the last writer wins"
)
NO_IDS = (
    "count() and scan() need the session handler's ids() (not part of PHP's interface): "
    "implement it to list the ids stored"
)
_PLACEHOLDER = 86400.0  # how long a lock record in the ``locks`` store lives unused


class _Opened:
    """One handler between its open() and its close(): PHP's calls, their results checked.

    A call that raises becomes StoreUnavailable (chained, with no id in the message) and
    marks the handler broken: it is closed and dropped instead of reused.
    """

    def __init__(self, handler: SessionHandler, locking: bool) -> None:
        self.handler = handler
        self.can_lock = locking
        self.can_list = implements(handler, "ids")
        self.can_validate = implements(handler, "validate_id")
        self.broken = False

    @contextmanager
    def calling(self, method: str) -> Iterator[None]:
        try:
            yield
        except CoatcheckError:
            raise
        except Exception as e:
            self.broken = True
            raise StoreUnavailable(
                f"the session handler's {method}() raised {type(e).__name__}"
            ) from e
        except BaseException:  # cancelled: the call may still finish (and hold a lock)
            self.broken = True
            raise

    def get(self, key: str) -> Row | None:
        with self.calling("read"):
            data = self.handler.read(key)
        return envelope.unpack(data)

    def put(self, key: str, row: Row, *, meta_only: bool = False) -> None:
        data = envelope.pack(row)
        method = "update_timestamp" if meta_only else "write"
        with self.calling(method):
            if meta_only:
                done = self.handler.update_timestamp(key, data)
            else:
                done = self.handler.write(key, data)
        envelope.checked(done, method)

    def delete(self, key: str) -> None:
        with self.calling("destroy"):
            done = self.handler.destroy(key)
        envelope.checked(done, "destroy")

    def exists(self, key: str) -> bool:
        with self.calling("validate_id"):
            return bool(self.handler.validate_id(key))

    def gc(self, max_lifetime: int) -> int:
        with self.calling("gc"):
            result = self.handler.gc(max_lifetime)
        return envelope.removed(result)

    def stored_keys(self) -> list[str]:
        """The storage keys the handler lists; anything else there is not ours."""
        with self.calling("ids"):
            listed = list(self.handler.ids())
        return [k for k in listed if isinstance(k, str) and _is_key(k)]

    def lock(self, key: str, timeout: float) -> None:
        with self.calling("lock"):
            got = self.handler.lock(key, timeout)
        if not got:
            raise LockTimeout(f"the session handler's lock() was not granted in {timeout:g}s")

    def unlock(self, key: str) -> None:
        """Never raises: a handler whose unlock failed is dropped, and its lock with it."""
        try:
            with self.calling("unlock"):
                done = self.handler.unlock(key)
            envelope.checked(done, "unlock")
        except StoreUnavailable:
            self.broken = True
            log.warning("the session handler's unlock() failed; the handler is dropped")


class _Request:
    """The handler one request opened, if any yet."""

    opened: _Opened | None = None


class HandlerStore(Store):
    """A store made of a PHP-shaped handler (:class:`~coatcheck.handlers.SessionHandler`).

    ``handler``: a factory, called with no arguments, that makes a new handler (the class
    itself, or ``lambda: MyHandler(connection)``). Each request gets a handler of its own,
    as each PHP worker has one; closed handlers are reused, up to ``max_idle`` kept.
    The asyncio store also takes a blocking handler, and runs its calls in a worker thread
    of the handler's own.
    ``locks``: another coatcheck store whose leases make the critical section, when the
    handler has no lock()/unlock() (it is opened and closed with this store).
    ``save_path`` and ``name``: what open() is given (PHP's session.save_path and
    session.name). ``max_lifetime``: what gc() is given (PHP's session.gc_maxlifetime);
    make it at least the longest idle timeout any session has (remember-me included) if the
    handler's gc deletes by it.
    ``mutex_wait``: how long one store call waits for the critical section (LockTimeout
    after); ``mutex_lease``: how long a critical section in ``locks`` may last.
    """

    def __init__(
        self,
        handler: Callable[[], SessionHandler],
        *,
        locks: Store | None = None,
        save_path: str = "",
        name: str = "session",
        max_lifetime: float = 1440,
        mutex_wait: float = 10.0,
        mutex_lease: float = 10.0,
        max_idle: int = 8,
    ) -> None:
        if isinstance(handler, SessionHandler) or not callable(handler):
            raise ConfigError(
                "HandlerStore takes a factory that makes a handler (the class, or a function "
                "returning a new one), not a handler: each request needs one of its own"
            )
        if locks is not None and not isinstance(locks, Store):
            raise ConfigError("locks must be a coatcheck store of the same kind (sync or async)")
        if not isinstance(save_path, str) or not isinstance(name, str):
            raise ConfigError("save_path and name must be strings")
        if isinstance(max_idle, bool) or not isinstance(max_idle, int) or max_idle < 0:
            raise ConfigError("max_idle must be a whole number, 0 or more")
        for option, value in (
            ("max_lifetime", max_lifetime),
            ("mutex_wait", mutex_wait),
            ("mutex_lease", mutex_lease),
        ):
            if not check_seconds(option, value) > 0:
                raise ConfigError(f"{option} must be greater than 0")
        self._factory = handler
        self.locks = locks
        self.save_path = save_path
        self.name = name
        self.max_lifetime = int(max_lifetime)
        self.mutex_wait = float(mutex_wait)
        self.mutex_lease = float(mutex_lease)
        self.max_idle = max_idle
        self._idle: list[SessionHandler] = []
        self._guard = threading.Lock()
        self._request: _Request | None = None  # set on the views request_scope() makes
        self._own_sid: bool | None = None  # whether the handlers override create_sid()

    # --- one handler per request, in PHP's order -----------------------------------------

    def request_scope(self) -> HandlerStore:
        """A view of this store for one session: its first call opens a handler, and every
        call until :meth:`end_request` uses it. The session layer calls both."""
        view = copy.copy(self)
        view._request = _Request()
        return view

    def end_request(self) -> None:
        """Close the handler this view opened, if any (PHP: session_write_close)."""
        request = self._request
        if request is not None and request.opened is not None:
            opened, request.opened = request.opened, None
            self._close(opened)

    @contextmanager
    def _handler(self) -> Iterator[_Opened]:
        request = self._request
        if request is not None:  # a request's view: open once, closed by end_request()
            if request.opened is None:
                request.opened = self._open()
            yield request.opened
            return
        opened = self._open()
        try:
            yield opened
        finally:
            self._close(opened)

    def _idle_handler(self) -> SessionHandler | None:
        with self._guard:
            return self._idle.pop() if self._idle else None

    def _adopt(self, made: object) -> SessionHandler:
        """A handler the factory made, checked (a blocking one is run in worker threads)."""
        if not isinstance(made, SessionHandler):
            raise ConfigError(
                f"the handler factory returned {type(made).__name__}, not a session handler "
                "(subclass SessionHandler from coatcheck.handlers)"
            )
        if implements(made, "lock") != implements(made, "unlock"):
            raise ConfigError("a session handler implements both lock() and unlock(), or neither")
        self._own_sid = implements(made, "create_sid")
        return as_sync(made)

    def _keep(self, handler: SessionHandler) -> None:
        with self._guard:
            if len(self._idle) < self.max_idle:
                self._idle.append(handler)

    def _open(self) -> _Opened:
        handler = self._idle_handler()
        if handler is None:  # the factory may connect: not on the event loop
            handler = self._adopt(self._factory())
        opened = _Opened(handler, self.locks is not None or implements(handler, "lock"))
        with opened.calling("open"):
            done = handler.open(self.save_path, self.name)
        envelope.checked(done, "open")  # a handler that failed to open is not closed (PHP)
        return opened

    def _close(self, opened: _Opened) -> None:
        try:
            with opened.calling("close"):
                done = opened.handler.close()
            envelope.checked(done, "close")
        except StoreUnavailable:
            log.warning("the session handler's close() failed; the handler is dropped")
            return
        if not opened.broken:
            self._keep(opened.handler)

    # --- the critical section ------------------------------------------------------------

    @contextmanager
    def _section(self, opened: _Opened, key: str, needed: bool) -> Iterator[None]:
        """Exclusive access to ``key`` for one read-check-write; ``needed``: ConfigError when
        there is no lock to give it, rather than a check-and-set that is not one."""
        if self.locks is not None:
            token = self._take(key)
            try:
                yield
            finally:
                self._give(key, token)
        elif opened.can_lock:
            opened.lock(key, self.mutex_wait)
            try:
                yield
            finally:
                opened.unlock(key)
        elif needed:
            raise ConfigError(NO_LOCK)
        else:
            yield

    def _take(self, key: str) -> str:
        """A lease on ``key``'s lock record in the ``locks`` store (made on first use)."""
        locks = self.locks
        assert locks is not None
        name = _lock_name(key)
        lock = LockRequest(new_token(), self.mutex_lease)
        delays = backoff(0.002, 0.05, self.mutex_wait, time.monotonic)
        while True:
            got = locks.read(name, lock)
            now = locks.clock()
            if isinstance(got, Stored) and got.expires_at > now:
                if got.expires_at < now + _PLACEHOLDER / 2:  # keep the record from expiring
                    locks.update_timestamp(name, now + _PLACEHOLDER)
                return lock.token
            if isinstance(got, Stored) or got is None:  # no lock record yet, or an expired one
                try:
                    expect = got.version if got is not None else MUST_CREATE
                    locks.write(name, b"", now + _PLACEHOLDER, expect=expect)
                except VersionMismatch:
                    pass  # another request made it first: take the lock on theirs
                continue
            delay = next(delays, None)
            if delay is None:
                raise LockTimeout(
                    f"the session's critical section in the locks store stayed busy for "
                    f"{self.mutex_wait:g}s"
                )
            time.sleep(delay)

    def _give(self, key: str, token: str) -> None:
        assert self.locks is not None
        try:
            self.locks.release(_lock_name(key), token)
        except Exception:  # its lease runs out instead
            log.warning("could not release a critical section in the locks store")

    # --- the contract --------------------------------------------------------------------

    def create_id(self, id_bytes: int) -> str:
        """The handler's create_sid() if it has one, held to coatcheck's id rules."""
        if self._own_sid is False:  # known from the handlers made so far
            return ids.new_id(id_bytes)
        handler = self._idle_handler() or self._adopt(self._factory())
        try:
            if not implements(handler, "create_sid"):
                return ids.new_id(id_bytes)
            with _Opened(handler, False).calling("create_sid"):
                sid = handler.create_sid()
        finally:
            self._keep(handler)
        if not isinstance(sid, str) or not ids.is_well_formed(sid, id_bytes):
            raise ConfigError(
                f"the session handler's create_sid() must return {id_bytes} random bytes in "
                f"unpadded base64url, as secrets.token_urlsafe({id_bytes}) does: at least 256 "
                "bits, the form strict mode accepts"
            )
        return sid

    def open(self) -> None:
        if self.locks is not None:
            self.locks.open()

    def close(self) -> None:
        with self._guard:
            self._idle.clear()
        if self.locks is not None:
            self.locks.close()

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        ids.check_storage_key(key)
        with self._handler() as h:
            if lock is None:
                return _stored(h.get(key))
            with self._section(h, key, needed=True):
                row = h.get(key)
                if row is None:
                    return None
                now = self.clock()
                if row.expires_at > now:  # an expired session needs no lock: it starts over
                    if not try_lock(row, lock, now):
                        return LOCKED
                    h.put(key, row, meta_only=True)
                return _stored(row)

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        ids.check_storage_key(key)
        needed = token is not None or (expect is not None and expect > 0)
        with self._handler() as h, self._section(h, key, needed):
            row = h.get(key)
            check_write(row, expect, token, self.clock())
            new = Row(payload, expires_at, (row.version if row else 0) + 1)
            if row is not None and token is None:  # keep a lock this writer does not own
                new.token, new.lock_until = row.token, row.lock_until
            h.put(key, new)
            return new.version

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        ids.check_storage_key(key)
        with self._handler() as h, self._section(h, key, token is not None):
            row = h.get(key)
            if row is None:  # a touch never brings a destroyed session back
                return
            release = token is not None and holds(row, token)
            if expires_at <= row.expires_at and not release:
                return
            row.expires_at = max(row.expires_at, expires_at)
            if release:
                row.token, row.lock_until = None, 0.0
            h.put(key, row, meta_only=True)

    def release(self, key: str, token: str) -> None:
        ids.check_storage_key(key)
        with self._handler() as h, self._section(h, key, needed=False):
            row = h.get(key)
            if row is not None and holds(row, token):
                row.token, row.lock_until = None, 0.0
                h.put(key, row, meta_only=True)

    def destroy(self, key: str) -> None:
        ids.check_storage_key(key)
        with self._handler() as h, self._section(h, key, needed=False):
            h.delete(key)

    def gc(self) -> int:
        """Delete the sessions past their deadline (when the handler lists its ids), then
        run the handler's own gc(max_lifetime); the sum of both counts."""
        with self._handler() as h:
            removed = 0
            if h.can_list:
                for key in h.stored_keys():
                    row = h.get(key)
                    if row is None or row.expires_at > self.clock():
                        continue
                    with self._section(h, key, needed=False):
                        row = h.get(key)  # checked again: one renewed meanwhile stays
                        if row is not None and row.expires_at <= self.clock():
                            h.delete(key)
                            removed += 1
            return removed + h.gc(self.max_lifetime)

    def validate_id(self, key: str) -> bool:
        ids.check_storage_key(key)
        with self._handler() as h:
            if h.can_validate and not h.exists(key):
                return False
            row = h.get(key)
            return row is not None and row.expires_at > self.clock()

    def count(self) -> int:
        return len(self._metas())

    def scan(self) -> Iterator[Meta]:
        metas = self._metas()
        yield from metas

    def _metas(self) -> list[Meta]:
        with self._handler() as h:
            if not h.can_list:
                raise ConfigError(NO_IDS)
            out = []
            for key in h.stored_keys():
                row = h.get(key)
                now = self.clock()
                if row is not None and row.expires_at > now:
                    out.append(Meta(key, row.expires_at, len(row.payload), row.locked(now)))
            return out


def _stored(row: Row | None) -> Stored | None:
    return None if row is None else Stored(row.payload, row.expires_at, row.version)


def _is_key(value: str) -> bool:
    try:
        ids.check_storage_key(value)
    except ValueError:
        return False
    return True


def _lock_name(key: str) -> str:
    """The key of ``key``'s lock record in the locks store: never a session's own key."""
    return hashlib.sha256(b"coatcheck/handler-lock/" + key.encode("ascii")).hexdigest()
