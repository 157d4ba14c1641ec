# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The migrating wrapper and the copy, written once for sync and asyncio (scripts/unasync.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ...contract import MUST_CREATE, LockRequest, Meta, ReadResult, Stored
from ...errors import ConfigError, VersionMismatch
from ...stores.base import Store, end_request, request_view
from .._inner import forward
from ..encrypted import UNREADABLE
from ._failures import Failures
from ._report import CopyReport, Outcome, Progress, check_pair
from ._workers import Workers


class MigratingStore(Store):
    """Two stores during a move with no downtime: read from ``old``, write to both.

    ``old`` stays the source of truth until you switch over: reads, locks, ``validate_id``,
    ``count`` and ``scan`` are its. Every write, touch and destroy goes to both: to ``old``
    with its ``expect`` and lock token, to ``new`` unconditionally (locks live in ``old``
    only). Writes and touches reach ``new`` first, while the lock is still held (the old
    store's write releases it), so ``new`` sees one session's writes in the order the lock
    gives them; a write ``old`` refuses is deleted from ``new`` again. New sessions and
    destroys reach ``old`` first. ``gc`` runs on both and returns ``old``'s count.

    A failure of ``new`` never fails the request: it is logged as a warning (storage key
    only) and counted in :attr:`failures`, and after a failed write or touch the key is
    dropped from ``new`` so that the next :func:`copy_sessions` run copies it afresh. See
    docs/migrating/between-stores.md for the three deploy steps.
    """

    def __init__(self, old: Store, new: Store) -> None:
        check_pair(old, new, "MigratingStore(old, new)")
        self.old = old
        self.new = new
        self._failures = Failures()
        self.shared = old.shared and new.shared
        # the old store decides what is live: where it expires records itself, the engine
        # leaves GC alone (the new store's expired copies wait for the switch-over)
        self.expires_itself = old.expires_itself
        if hasattr(old, "create_schema") or hasattr(new, "create_schema"):
            self.create_schema = self._create_schemas  # for `coatcheck init`: both stores
        # lock hand-over (Redis, PostgreSQL): locks are the old store's, so are its wake-ups
        forward(self, old, "wait_for_release")
        # a PHP-shaped handler (coatcheck.handlers) opens once per request: each request gets
        # a wrapper over the two stores' own views, and ends both
        if hasattr(old, "request_scope") or hasattr(new, "request_scope"):
            self.request_scope = self._request_scope
        if hasattr(old, "end_request") or hasattr(new, "end_request"):
            self.end_request = self._end_request

    def _request_scope(self) -> MigratingStore:
        view = type(self)(request_view(self.old), request_view(self.new))
        view._failures = self._failures  # one count for the wrapper and its views
        return view

    def _end_request(self) -> None:
        for store in (self.old, self.new):
            end_request(store)

    @property
    def failures(self) -> int:
        """How many calls to the new store failed since this wrapper was built."""
        return self._failures.count

    @property
    def clock(self) -> Callable[[], float]:
        """The old store's clock; setting it (a manager's ``clock=``) sets both stores'."""
        return self.old.clock

    @clock.setter
    def clock(self, value: Callable[[], float]) -> None:
        self.old.clock = value
        self.new.clock = value

    def create_id(self, id_bytes: int) -> str:
        return self.old.create_id(id_bytes)

    def open(self) -> None:
        self.old.open()
        try:
            self.new.open()
        except Exception as e:  # the old store serves; every later call retries the new one
            self._failures.record("open", None, e, dropped=True)

    def close(self) -> None:
        try:
            self.old.close()
        finally:
            self.new.close()

    def _create_schemas(self) -> None:
        for store in (self.old, self.new):
            create = getattr(store, "create_schema", None)
            if create is not None:
                create()

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return self.old.read(key, lock)

    def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The old store's records, in one batch where it has one (admin), as :meth:`read`."""
        return self.old.read_many(keys)

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        if expect == MUST_CREATE:  # a new key: no other request can know it yet
            version = self.old.write(key, payload, expires_at, expect=expect, token=token)
            self._write_new(key, payload, expires_at)
            return version
        # The new store first, while the old store's lock is still held (its write releases
        # it): the next request's write then reaches the new store after this one.
        self._write_new(key, payload, expires_at)
        try:
            return self.old.write(key, payload, expires_at, expect=expect, token=token)
        except BaseException:
            self._forget(key)  # the old store refused it: so must the new one
            raise

    def _write_new(self, key: str, payload: bytes, expires_at: float) -> None:
        try:
            self.new.write(key, payload, expires_at)
        except Exception as e:
            self._drop(key, "write", e)

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        try:  # first, inside the lock, as write; a touch never creates a record
            self.new.update_timestamp(key, expires_at)
        except Exception as e:
            self._drop(key, "update_timestamp", e)
        self.old.update_timestamp(key, expires_at, token=token)

    def _drop(self, key: str, doing: str, error: Exception) -> None:
        """After a failed change on the new store: delete its copy, which may be stale now."""
        try:
            self.new.destroy(key)
        except Exception:
            self._failures.record(doing, key, error, dropped=False)
        else:
            self._failures.record(doing, key, error, dropped=True)

    def _forget(self, key: str) -> None:
        """Delete the new store's copy of a write the old store refused (a conflict, a lost
        lease): the request that wins writes it again, and the copy fills in what is missing."""
        try:
            self.new.destroy(key)
        except Exception as e:
            self._failures.record("destroy", key, e, dropped=False)

    def release(self, key: str, token: str) -> None:
        self.old.release(key, token)

    def destroy(self, key: str) -> None:
        self.old.destroy(key)
        try:
            self.new.destroy(key)
        except Exception as e:
            self._failures.record("destroy", key, e, dropped=False)

    def gc(self) -> int:
        removed = self.old.gc()
        try:
            self.new.gc()
        except Exception as e:
            self._failures.record("gc", None, e, dropped=True)
        return removed

    def validate_id(self, key: str) -> bool:
        return self.old.validate_id(key)

    def count(self) -> int:
        return self.old.count()

    def scan(self) -> Iterator[Meta]:
        return self.old.scan()


def copy_sessions(
    source: Store,
    target: Store,
    *,
    progress: Progress | None = None,
    batch: int = 500,
    concurrency: int = 8,
) -> CopyReport:
    """Copy every live record of ``source`` that ``target`` lacks; never overwrite one.

    Each record keeps its payload and expiry, and is written with ``expect=MUST_CREATE``:
    a record already in ``target`` (written since by a :class:`MigratingStore`, or by
    an earlier run) is skipped, so a run stopped half-way resumes where it ended. Records
    that expire or vanish between the scan and the read are skipped too.

    ``progress(done, total)`` is called after each ``batch`` records; ``total`` is
    ``source.count()``, or None for a store that cannot count. ``concurrency``: how many
    records are copied at once.
    """
    check_pair(source, target, "copy_sessions(source, target)")
    if batch < 1 or concurrency < 1:
        raise ConfigError("copy_sessions: batch and concurrency must be at least 1")
    try:
        total: int | None = source.count()
    except NotImplementedError:
        total = None
    outcomes: list[Outcome] = []
    keys: list[str] = []

    def copy_one(key: str) -> Outcome:
        return _copy(source, target, key)

    with Workers(concurrency) as workers:
        for meta in source.scan():
            keys.append(meta.key)
            if len(keys) < batch:
                continue
            outcomes += workers.map(copy_one, keys)
            keys.clear()
            if progress is not None:
                progress(len(outcomes), total)
        if keys:
            outcomes += workers.map(copy_one, keys)
            if progress is not None:
                progress(len(outcomes), total)
    return CopyReport.of(outcomes)


def _copy(source: Store, target: Store, key: str) -> Outcome:
    got = source.read(key)
    if not isinstance(got, Stored) or got.expires_at <= source.clock():
        return "gone"  # destroyed or expired since the scan
    if got.payload == UNREADABLE:
        return "unreadable"
    try:
        target.write(key, got.payload, got.expires_at, expect=MUST_CREATE)
    except VersionMismatch:
        return "there"  # the migrating store or an earlier run wrote it
    _settle(source, target, key, got)
    return "copied"


def _settle(source: Store, target: Store, key: str, copied: Stored) -> None:
    """Undo what changed in ``source`` between the read and the copy's write.

    A request that destroyed or touched the session meanwhile found nothing to change in
    ``target`` yet: without this, a logged-out session would come back after the switch,
    or keep an older deadline. A rewrite needs nothing more: a migrating store writes to
    ``target`` after ``source``, so its write lands after the copy's (or the copy's failed).
    """
    now = source.read(key)
    if not isinstance(now, Stored) or now.expires_at <= source.clock():
        target.destroy(key)
    elif now.expires_at > copied.expires_at:
        target.update_timestamp(key, now.expires_at)
