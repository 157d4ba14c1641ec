# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The PostgreSQL store's I/O, over a psycopg connection pool.

The sync and async stores are one source: scripts/unasync.py writes the sync one from the
async one. Every operation is one statement from :class:`~._statements.Statements` on a pooled
psycopg connection (a failed write asks one more question, to say why it failed). A missing
table reads as empty; the first write or lock creates it unless the URL says
``create_schema=false``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ...errors import StoreUnavailable
from .. import _url
from .._gc import GcPace
from .._handover import Handover
from .._url import MissingTable, pending_input
from ..base import LockRequest, Meta, ReadResult, Store, Stored
from ._listen import NO_COLUMN_RETRY, Feed, Notices, missing_schema
from ._statements import (
    SCAN_PAGE,
    SCHEMA_LOCK,
    Rows,
    Settings,
    Statements,
    key_bytes,
)

Pool = ConnectionPool[psycopg.Connection[Any]]
log = logging.getLogger("coatcheck")


class PostgreSQLStore(Store):
    """Sessions in a PostgreSQL table, through a psycopg connection pool.

    One store serves concurrent requests (threads, or tasks) and survives a fork: a pool opened
    before ``fork()`` is left to the parent and the child opens its own.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.q = Statements(settings.table)
        self._pool: Pool | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.notices = Notices(settings.table)  # lock hand-over: LISTEN/NOTIFY, see _listen.py
        where = f"postgresql store at {settings.where}"
        self._handover = Handover(self._feed, where) if settings.notify else None
        self._handover_off_until = 0.0  # a table without lock_waiting: poll until then

    # --- connections --------------------------------------------------------------------

    def _ready(self) -> Pool:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            pool = self._pool
            if pool is None or self._pid != os.getpid():  # new, or inherited by a fork
                pool = self._open_pool()
                self._pool, self._pid = pool, os.getpid()
            return pool

    def _open_pool(self) -> Pool:
        s = self.settings
        try:
            # One direct connection first: a refused connection or a bad password fails at
            # once with the server's reason, where the pool would only time out.
            with psycopg.Connection.connect(s.conninfo, **s.connect_kwargs):
                pass
        except psycopg.Error as e:
            raise self._unavailable(e, "connect") from e
        pool = ConnectionPool(
            s.conninfo,
            kwargs=s.connect_kwargs,
            min_size=s.pool_min,
            max_size=s.pool_max,
            timeout=s.connect_timeout,
            name="coatcheck",
            open=False,
        )
        try:
            pool.open(wait=True, timeout=s.connect_timeout)
        except psycopg.Error as e:
            pool.close()  # or its workers would go on reconnecting
            raise self._unavailable(e, "connect") from e
        return pool

    def _connection(self, pool: Pool) -> psycopg.Connection[Any]:
        """A pooled connection, skipping those the server has closed meanwhile.

        The pool's own ``check`` hook backs off a second or more per bad connection; after
        a mass disconnect that would time out, so dead ones are dropped here, at once.
        """
        for _ in range(pool.max_size):
            conn = pool.getconn()
            if not _pending_input(conn):
                return conn
            try:
                ConnectionPool.check_connection(conn)  # a notice, perhaps?
                return conn
            except psycopg.Error:
                conn.close()
                pool.putconn(conn)
        return pool.getconn()

    def _execute(self, query: str, params: Any, *, retry: bool) -> tuple[Rows, int]:
        """One statement on a pooled connection; rows and rowcount.

        ``retry``: run it once more after a lost connection. Only for statements that
        mean the same thing twice (reads, compare-and-delete, deadline moves); a write
        that may have committed before its connection broke is never repeated.
        """
        for attempt in (0, 1):
            pool = self._ready()
            conn = self._connection(pool)
            try:
                cur = conn.execute(query, params, binary=True)
                rows = [] if query in self.q.rowcount_only else cur.fetchall()
                return rows, cur.rowcount
            except psycopg.Error as e:
                if attempt or not retry or not _connection_lost(e):
                    raise
            finally:
                pool.putconn(conn)  # a broken one is discarded and replaced by the pool
        raise AssertionError("unreachable")

    def _run(
        self, query: str, params: Any, *, doing: str, retry: bool = True, creates: bool = False
    ) -> tuple[Rows, int]:
        """:meth:`_execute`, with a missing table read as empty, or created by ``creates``."""
        for attempt in (0, 1):
            try:
                return self._execute(query, params, retry=retry)
            except psycopg.errors.UndefinedTable as e:
                if not creates:
                    return [], 0  # no table: nothing stored, nothing to change
                if attempt or not self.settings.create_schema:
                    raise self._unavailable(MissingTable(self.q.table), doing) from e
            except psycopg.Error as e:
                raise self._unavailable(e, doing) from e
            self.create_schema()
        raise AssertionError("unreachable")

    def _unavailable(self, e: BaseException, doing: str) -> StoreUnavailable:
        where = f"postgresql store at {self.settings.where}"
        return _url.unavailable(where, e, doing, self.settings.secrets)

    def create_schema(self) -> None:
        """Create the table and its expiry index; safe to run again, and concurrently."""
        pool = self._ready()
        conn = self._connection(pool)
        try:
            with conn.transaction():
                # Two stores creating at once would race on the catalog: serialize.
                conn.execute(SCHEMA_LOCK)
                for statement in (*self.q.schema, *self.notices.schema):
                    conn.execute(statement)
        except psycopg.Error as e:
            raise self._unavailable(e, "create schema") from e
        finally:
            pool.putconn(conn)

    def open(self) -> None:
        self._ready()

    def close(self) -> None:
        if self._handover is not None:
            self._handover.close()
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    # --- the contract -------------------------------------------------------------------

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        query, params = self.q.read_query(key, lock, self.clock())
        rows, _ = self._run(query, params, doing="read", creates=lock is not None)
        return self.q.read_result(rows)

    def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The records under ``keys`` in one statement, without locks (admin)."""
        if not keys:
            return []
        rows, _ = self._run(*self.q.read_many_query(keys), doing="read")
        return self.q.read_many_result(keys, rows)

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        now = self.clock()
        query, params = self.q.write_query(key, payload, expires_at, expect, token, now)
        rows, _ = self._run(query, params, doing="write", retry=False, creates=True)
        if rows:
            return int(rows[0][0])
        rows, _ = self._run(*self.q.why_query(key, token, now), doing="write check")
        raise self.q.write_error(rows, token)

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        self._run(*self.q.touch_query(key, expires_at, token), doing="touch")

    def release(self, key: str, token: str) -> None:
        self._run(*self.q.release_query(key, token), doing="release")

    def destroy(self, key: str) -> None:
        self._run(self.q.destroy, (key_bytes(key),), doing="destroy")

    def gc(self) -> int:
        """Delete expired rows (PHP's session.gc); see :meth:`gc_batches`."""
        removed = 0
        for deleted in self.gc_batches():
            removed += deleted
        return removed

    def gc_batches(self) -> Iterator[int]:
        """Delete expired rows batch by batch along the expiry index, each batch sized to
        take about GC_TARGET seconds; yields each batch's count."""
        now, after, pace = self.clock(), float("-inf"), GcPace()
        while True:
            started = time.perf_counter()
            params = {"now": now, "after": after, "limit": pace.size}
            rows, _ = self._run(self.q.gc, params, doing="gc")
            if not rows:  # no table
                return
            found, deleted, last = rows[0]
            yield int(deleted)
            if found < pace.size:
                return
            pace.done(found, time.perf_counter() - started)
            after = last

    def gc_pending(self) -> int:
        """How many expired rows :meth:`gc` would delete now (an index range count)."""
        rows, _ = self._run(self.q.count_expired, (self.clock(),), doing="count")
        return int(rows[0][0]) if rows else 0

    def has_schema(self) -> bool:
        """Whether the table exists (``coatcheck init`` or a first write made it)."""
        rows, _ = self._run(*self.q.has_table_query(), doing="look up the table")
        return bool(rows and rows[0][0])

    def validate_id(self, key: str) -> bool:
        params = (key_bytes(key), self.clock())
        rows, _ = self._run(self.q.validate, params, doing="validate")
        return bool(rows)

    def count(self) -> int:
        rows, _ = self._run(self.q.count, (self.clock(),), doing="count")
        return int(rows[0][0]) if rows else 0

    def scan(self) -> Iterator[Meta]:
        after, now = b"", self.clock()
        while True:
            params = {"after": after, "now": now}
            rows, _ = self._run(self.q.scan, params, doing="scan")
            for row in rows:
                yield self.q.meta(row)
            if len(rows) < SCAN_PAGE:
                return
            after = bytes(rows[-1][0])

    # --- lock hand-over (_listen.py) ----------------------------------------------------

    def wait_for_release(self, key: str, timeout: float) -> bool:
        """Sleep until the lock on ``key`` is released, its lease ends, or ``timeout`` passes.

        False at once when notices are off (``notify=false``), their connection is down, or
        the table predates them (asked again after NO_COLUMN_RETRY): the caller polls instead.
        """
        handover = self._handover
        if handover is None or time.monotonic() < self._handover_off_until:
            return False

        def announce() -> float | None:
            now = self.clock()
            params = {"key": key_bytes(key), "now": float(now)}
            try:
                rows, _ = self._run(self.notices.announce, params, doing="announce")
            except StoreUnavailable as e:
                if missing_schema(e):
                    self._handover_off_until = time.monotonic() + NO_COLUMN_RETRY
                    log.warning(
                        "%s: lock hand-over needs `coatcheck init` (or create_schema()) on"
                        " this table; waiters poll until then",
                        f"postgresql store at {self.settings.where}",
                    )
                    handover.close()
                raise
            return self.notices.lease_left(rows, now)

        return handover.wait(key, timeout, announce)

    def _feed(self) -> Feed:
        """The LISTEN connection for release notices, outside the pool."""
        return Feed(self.settings, self.notices).open()


def _connection_lost(e: psycopg.Error) -> bool:
    """The server went away (terminated backend, broken socket), not a slow query."""
    return e.sqlstate is None or e.sqlstate.startswith(("08", "57P"))


def _pending_input(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection has unread input: usually a terminated backend's goodbye."""
    try:
        return pending_input(conn.fileno())
    except psycopg.Error:
        return True
