"""The migrating wrapper and the copy, written once for sync and asyncio (scripts/unasync.py)."""

# unasync: aend_request -> end_request

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from ...contract import MUST_CREATE, LockRequest, Meta, ReadResult, Stored
from ...errors import ConfigError, VersionMismatch
from ...stores.base import AsyncStore, aend_request, request_view
from .._inner import forward
from ..encrypted import UNREADABLE
from ._failures import Failures
from ._report import CopyReport, Outcome, Progress, check_pair
from ._workers import AsyncWorkers


class AsyncMigratingStore(AsyncStore):
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

    def __init__(self, old: AsyncStore, new: AsyncStore) -> None:
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

    def _request_scope(self) -> AsyncMigratingStore:
        view = type(self)(request_view(self.old), request_view(self.new))
        view._failures = self._failures  # one count for the wrapper and its views
        return view

    async def _end_request(self) -> None:
        for store in (self.old, self.new):
            await aend_request(store)

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

    async def open(self) -> None:
        await self.old.open()
        try:
            await self.new.open()
        except Exception as e:  # the old store serves; every later call retries the new one
            self._failures.record("open", None, e, dropped=True)

    async def close(self) -> None:
        try:
            await self.old.close()
        finally:
            await self.new.close()

    async def _create_schemas(self) -> None:
        for store in (self.old, self.new):
            create = getattr(store, "create_schema", None)
            if create is not None:
                await create()

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return await self.old.read(key, lock)

    async def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The old store's records, in one batch where it has one (admin), as :meth:`read`."""
        return await self.old.read_many(keys)

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        if expect == MUST_CREATE:  # a new key: no other request can know it yet
            version = await self.old.write(key, payload, expires_at, expect=expect, token=token)
            await self._write_new(key, payload, expires_at)
            return version
        # The new store first, while the old store's lock is still held (its write releases
        # it): the next request's write then reaches the new store after this one.
        await self._write_new(key, payload, expires_at)
        try:
            return await self.old.write(key, payload, expires_at, expect=expect, token=token)
        except BaseException:
            await self._forget(key)  # the old store refused it: so must the new one
            raise

    async def _write_new(self, key: str, payload: bytes, expires_at: float) -> None:
        try:
            await self.new.write(key, payload, expires_at)
        except Exception as e:
            await self._drop(key, "write", e)

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        try:  # first, inside the lock, as write; a touch never creates a record
            await self.new.update_timestamp(key, expires_at)
        except Exception as e:
            await self._drop(key, "update_timestamp", e)
        await self.old.update_timestamp(key, expires_at, token=token)

    async def _drop(self, key: str, doing: str, error: Exception) -> None:
        """After a failed change on the new store: delete its copy, which may be stale now."""
        try:
            await self.new.destroy(key)
        except Exception:
            self._failures.record(doing, key, error, dropped=False)
        else:
            self._failures.record(doing, key, error, dropped=True)

    async def _forget(self, key: str) -> None:
        """Delete the new store's copy of a write the old store refused (a conflict, a lost
        lease): the request that wins writes it again, and the copy fills in what is missing."""
        try:
            await self.new.destroy(key)
        except Exception as e:
            self._failures.record("destroy", key, e, dropped=False)

    async def release(self, key: str, token: str) -> None:
        await self.old.release(key, token)

    async def destroy(self, key: str) -> None:
        await self.old.destroy(key)
        try:
            await self.new.destroy(key)
        except Exception as e:
            self._failures.record("destroy", key, e, dropped=False)

    async def gc(self) -> int:
        removed = await self.old.gc()
        try:
            await self.new.gc()
        except Exception as e:
            self._failures.record("gc", None, e, dropped=True)
        return removed

    async def validate_id(self, key: str) -> bool:
        return await self.old.validate_id(key)

    async def count(self) -> int:
        return await self.old.count()

    def scan(self) -> AsyncIterator[Meta]:
        return self.old.scan()


async def copy_sessions(
    source: AsyncStore,
    target: AsyncStore,
    *,
    progress: Progress | None = None,
    batch: int = 500,
    concurrency: int = 8,
) -> CopyReport:
    """Copy every live record of ``source`` that ``target`` lacks; never overwrite one.

    Each record keeps its payload and expiry, and is written with ``expect=MUST_CREATE``:
    a record already in ``target`` (written since by a :class:`AsyncMigratingStore`, or by
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
        total: int | None = await source.count()
    except NotImplementedError:
        total = None
    outcomes: list[Outcome] = []
    keys: list[str] = []

    async def copy_one(key: str) -> Outcome:
        return await _copy(source, target, key)

    async with AsyncWorkers(concurrency) as workers:
        async for meta in source.scan():
            keys.append(meta.key)
            if len(keys) < batch:
                continue
            outcomes += await workers.map(copy_one, keys)
            keys.clear()
            if progress is not None:
                progress(len(outcomes), total)
        if keys:
            outcomes += await workers.map(copy_one, keys)
            if progress is not None:
                progress(len(outcomes), total)
    return CopyReport.of(outcomes)


async def _copy(source: AsyncStore, target: AsyncStore, key: str) -> Outcome:
    got = await source.read(key)
    if not isinstance(got, Stored) or got.expires_at <= source.clock():
        return "gone"  # destroyed or expired since the scan
    if got.payload == UNREADABLE:
        return "unreadable"
    try:
        await target.write(key, got.payload, got.expires_at, expect=MUST_CREATE)
    except VersionMismatch:
        return "there"  # the migrating store or an earlier run wrote it
    await _settle(source, target, key, got)
    return "copied"


async def _settle(source: AsyncStore, target: AsyncStore, key: str, copied: Stored) -> None:
    """Undo what changed in ``source`` between the read and the copy's write.

    A request that destroyed or touched the session meanwhile found nothing to change in
    ``target`` yet: without this, a logged-out session would come back after the switch,
    or keep an older deadline. A rewrite needs nothing more: a migrating store writes to
    ``target`` after ``source``, so its write lands after the copy's (or the copy's failed).
    """
    now = await source.read(key)
    if not isinstance(now, Stored) or now.expires_at <= source.clock():
        await target.destroy(key)
    elif now.expires_at > copied.expires_at:
        await target.update_timestamp(key, now.expires_at)
