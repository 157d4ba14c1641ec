"""The PostgreSQL store's I/O, over a psycopg connection pool.

The sync and async stores are one source: scripts/unasync.py writes the sync one from the
async one. Every operation is one statement from :class:`~._statements.Statements` on a pooled
psycopg connection (a failed write asks one more question, to say why it failed). A missing
table reads as empty; the first write or lock creates it unless the URL says
``create_schema=false``.
"""

# unasync: asyncio -> threading

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from ...errors import StoreUnavailable
from .. import _url
from .._url import MissingTable, pending_input
from ..base import AsyncStore, LockRequest, Meta, ReadResult
from ._statements import (
    GC_BATCH,
    SCAN_PAGE,
    SCHEMA_LOCK,
    Rows,
    Settings,
    Statements,
    key_bytes,
)

Pool = AsyncConnectionPool[psycopg.AsyncConnection[Any]]


class AsyncPostgreSQLStore(AsyncStore):
    """Sessions in a PostgreSQL table, through a psycopg connection pool.

    One store serves concurrent requests (threads, or tasks) and survives a fork: a pool opened
    before ``fork()`` is left to the parent and the child opens its own.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.q = Statements(settings.table)
        self._pool: Pool | None = None
        self._pid = 0
        self._lock = asyncio.Lock()

    # --- connections --------------------------------------------------------------------

    async def _ready(self) -> Pool:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        async with self._lock:
            pool = self._pool
            if pool is None or self._pid != os.getpid():  # new, or inherited by a fork
                pool = await self._open_pool()
                self._pool, self._pid = pool, os.getpid()
            return pool

    async def _open_pool(self) -> Pool:
        s = self.settings
        try:
            # One direct connection first: a refused connection or a bad password fails at
            # once with the server's reason, where the pool would only time out.
            async with await psycopg.AsyncConnection.connect(s.conninfo, **s.connect_kwargs):
                pass
        except psycopg.Error as e:
            raise self._unavailable(e, "connect") from e
        pool = AsyncConnectionPool(
            s.conninfo,
            kwargs=s.connect_kwargs,
            min_size=s.pool_min,
            max_size=s.pool_max,
            timeout=s.connect_timeout,
            name="coatcheck",
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=s.connect_timeout)
        except psycopg.Error as e:
            await pool.close()  # or its workers would go on reconnecting
            raise self._unavailable(e, "connect") from e
        return pool

    async def _connection(self, pool: Pool) -> psycopg.AsyncConnection[Any]:
        """A pooled connection, skipping those the server has closed meanwhile.

        The pool's own ``check`` hook backs off a second or more per bad connection; after
        a mass disconnect that would time out, so dead ones are dropped here, at once.
        """
        for _ in range(pool.max_size):
            conn = await pool.getconn()
            if not _pending_input(conn):
                return conn
            try:
                await AsyncConnectionPool.check_connection(conn)  # a notice, perhaps?
                return conn
            except psycopg.Error:
                await conn.close()
                await pool.putconn(conn)
        return await pool.getconn()

    async def _execute(self, query: str, params: Any, *, retry: bool) -> tuple[Rows, int]:
        """One statement on a pooled connection; rows and rowcount.

        ``retry``: run it once more after a lost connection. Only for statements that
        mean the same thing twice (reads, compare-and-delete, deadline moves); a write
        that may have committed before its connection broke is never repeated.
        """
        for attempt in (0, 1):
            pool = await self._ready()
            conn = await self._connection(pool)
            try:
                cur = await conn.execute(query, params, binary=True)
                rows = [] if query in self.q.rowcount_only else await cur.fetchall()
                return rows, cur.rowcount
            except psycopg.Error as e:
                if attempt or not retry or not _connection_lost(e):
                    raise
            finally:
                await pool.putconn(conn)  # a broken one is discarded and replaced by the pool
        raise AssertionError("unreachable")

    async def _run(
        self, query: str, params: Any, *, doing: str, retry: bool = True, creates: bool = False
    ) -> tuple[Rows, int]:
        """:meth:`_execute`, with a missing table read as empty, or created by ``creates``."""
        for attempt in (0, 1):
            try:
                return await self._execute(query, params, retry=retry)
            except psycopg.errors.UndefinedTable as e:
                if not creates:
                    return [], 0  # no table: nothing stored, nothing to change
                if attempt or not self.settings.create_schema:
                    raise self._unavailable(MissingTable(self.q.table), doing) from e
            except psycopg.Error as e:
                raise self._unavailable(e, doing) from e
            await self.create_schema()
        raise AssertionError("unreachable")

    def _unavailable(self, e: BaseException, doing: str) -> StoreUnavailable:
        where = f"postgresql store at {self.settings.where}"
        return _url.unavailable(where, e, doing, self.settings.secrets)

    async def create_schema(self) -> None:
        """Create the table and its expiry index; safe to run again, and concurrently."""
        pool = await self._ready()
        conn = await self._connection(pool)
        try:
            async with conn.transaction():
                # Two stores creating at once would race on the catalog: serialize.
                await conn.execute(SCHEMA_LOCK)
                for statement in self.q.schema:
                    await conn.execute(statement)
        except psycopg.Error as e:
            raise self._unavailable(e, "create schema") from e
        finally:
            await pool.putconn(conn)

    async def open(self) -> None:
        await self._ready()

    async def close(self) -> None:
        async with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                await self._pool.close()
            self._pool = None

    # --- the contract -------------------------------------------------------------------

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        query, params = self.q.read_query(key, lock, self.clock())
        rows, _ = await self._run(query, params, doing="read", creates=lock is not None)
        return self.q.read_result(rows)

    async def write(
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
        rows, _ = await self._run(query, params, doing="write", retry=False, creates=True)
        if rows:
            return int(rows[0][0])
        rows, _ = await self._run(*self.q.why_query(key, token, now), doing="write check")
        raise self.q.write_error(rows, token)

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        await self._run(*self.q.touch_query(key, expires_at, token), doing="touch")

    async def release(self, key: str, token: str) -> None:
        await self._run(*self.q.release_query(key, token), doing="release")

    async def destroy(self, key: str) -> None:
        await self._run(self.q.destroy, (key_bytes(key),), doing="destroy")

    async def gc(self) -> int:
        """Delete expired rows in batches by the expiry index (PHP's session.gc)."""
        removed, now = 0, self.clock()
        while True:
            _, n = await self._run(self.q.gc, {"now": now}, doing="gc")
            removed += n
            if n < GC_BATCH:
                return removed

    async def validate_id(self, key: str) -> bool:
        params = (key_bytes(key), self.clock())
        rows, _ = await self._run(self.q.validate, params, doing="validate")
        return bool(rows)

    async def count(self) -> int:
        rows, _ = await self._run(self.q.count, (self.clock(),), doing="count")
        return int(rows[0][0]) if rows else 0

    async def scan(self) -> AsyncIterator[Meta]:
        after, now = b"", self.clock()
        while True:
            params = {"after": after, "now": now}
            rows, _ = await self._run(self.q.scan, params, doing="scan")
            for row in rows:
                yield self.q.meta(row)
            if len(rows) < SCAN_PAGE:
                return
            after = bytes(rows[-1][0])


def _connection_lost(e: psycopg.Error) -> bool:
    """The server went away (terminated backend, broken socket), not a slow query."""
    return e.sqlstate is None or e.sqlstate.startswith(("08", "57P"))


def _pending_input(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection has unread input: usually a terminated backend's goodbye."""
    try:
        return pending_input(conn.fileno())
    except psycopg.Error:
        return True
