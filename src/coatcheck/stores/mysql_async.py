"""The asyncio twin of :class:`~coatcheck.stores.mysql.MySQLStore`, on an aiomysql pool.

It runs the same flows (:mod:`.mysql_ops`) as the sync store, so the two send the same
statements. The pool is created on first use inside the running event loop: use one
store object per event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aiomysql  # type: ignore[import-untyped]
import pymysql  # type: ignore[import-untyped]

from . import mysql_ops as ops
from .base import AsyncStore, LockRequest, Meta, ReadResult
from .mysql import DRIVER_ERRORS, check_key
from .mysql_config import Settings, unavailable
from .mysql_ops import Flow, Query, Result, Sql
from .mysql_pool import KEEPS_CONNECTION, PING_AFTER, suspect

T = TypeVar("T")


class AsyncMySQLStore(AsyncStore):
    """An async store on an aiomysql connection pool."""

    scheme = "mysql"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = settings.table
        self._sql = Sql(settings.table)
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._schema_ready = False

    def __repr__(self) -> str:  # no credentials
        return f"<AsyncMySQLStore {self.settings.where} table={self.table}>"

    # --- running flows --------------------------------------------------------------------

    async def _get_pool(self) -> Any:
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await aiomysql.create_pool(**self.settings.aiomysql_args())
            return self._pool

    async def _acquire(self, pool: Any) -> Any:
        async with asyncio.timeout(self.settings.pool_timeout):
            conn = await pool.acquire()
        try:
            reader = conn._reader
            hung_up = reader.at_eof() or bool(getattr(reader, "_buffer", b""))
            sock = conn._writer.transport.get_extra_info("socket")
            if hung_up or suspect(sock):
                conn.close()  # the server closed it or sent an error: reconnect below
                await conn.ping(reconnect=True)
            elif asyncio.get_running_loop().time() - conn.last_usage > PING_AFTER:
                await conn.ping(reconnect=True)
        except BaseException:
            conn.close()
            pool.release(conn)
            raise
        return conn

    async def _run(self, flow: Flow[T]) -> T:
        try:
            pool = self._pool or await self._get_pool()
            conn = await self._acquire(pool)
        except TimeoutError:
            flow.close()
            raise unavailable(TimeoutError(), self.settings.where) from None
        except DRIVER_ERRORS as e:
            flow.close()
            raise unavailable(e, self.settings.where) from e
        keep = False
        try:
            if not self._schema_ready:
                await self._drive(conn, ops.create_schema(self._sql))
                self._schema_ready = True
            result = await self._drive(conn, flow)
            keep = True
            return result
        except KEEPS_CONNECTION:
            keep = True
            raise
        except DRIVER_ERRORS as e:
            raise unavailable(e, self.settings.where) from e
        finally:
            flow.close()
            if not keep:
                conn.close()  # mid-statement state is unknown: never reuse it
            pool.release(conn)

    async def _drive(self, conn: Any, flow: Flow[T]) -> T:
        try:
            query = next(flow)
            while True:
                query = flow.send(await self._execute(conn, query))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _execute(self, conn: Any, query: Query) -> Result:
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(self.settings.read_timeout):
                    return await self._statement(conn, query.sql, query.args)
            except pymysql.err.MySQLError as e:
                action = ops.retry(e, attempt)
                if action is None:
                    raise
                if action == "schema":
                    await self._drive(conn, ops.create_schema(self._sql))
                attempt += 1

    @staticmethod
    async def _statement(conn: Any, sql: str, args: dict[str, Any]) -> Result:
        if args:
            sql = sql % {name: _literal(conn, value) for name, value in args.items()}
        async with conn.cursor() as cur:
            await cur.execute(sql)
            rowcount, lastrowid = cur.rowcount, cur.lastrowid
            rows = await cur.fetchall()
            while await cur.nextset():
                rows = await cur.fetchall()
        return Result(rowcount, lastrowid or 0, tuple(rows))

    # --- the contract ---------------------------------------------------------------------

    async def open(self) -> None:
        await self.create_schema()

    async def close(self) -> None:
        async with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()

    async def create_schema(self) -> None:
        """Create the sessions table and its index if missing; safe to call any time."""
        await self._run(ops.create_schema(self._sql))
        self._schema_ready = True

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return await self._run(ops.read(self._sql, check_key(key), lock, time.time()))

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        flow = ops.write(self._sql, check_key(key), payload, expires_at, expect, token, time.time())
        return await self._run(flow)

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        await self._run(ops.update_timestamp(self._sql, check_key(key), expires_at, token))

    async def release(self, key: str, token: str) -> None:
        await self._run(ops.release(self._sql, check_key(key), token))

    async def destroy(self, key: str) -> None:
        await self._run(ops.destroy(self._sql, check_key(key)))

    async def gc(self) -> int:
        return await self._run(ops.gc(self._sql, time.time()))

    async def validate_id(self, key: str) -> bool:
        return await self._run(ops.validate_id(self._sql, check_key(key), time.time()))

    async def count(self) -> int:
        return await self._run(ops.count(self._sql, time.time()))

    async def scan(self) -> AsyncIterator[Meta]:
        now, after = time.time(), ""
        while True:
            page = await self._run(ops.scan_page(self._sql, after, now))
            for meta in page:
                yield meta
            if len(page) < ops.SCAN_PAGE:
                return
            after = page[-1].key


def _literal(conn: Any, value: object) -> str:
    """``conn.escape`` with bytes done here: aiomysql 0.3.2 cannot escape bytes with PyMySQL
    1.2.3+ (aio-libs/aiomysql#1080). Hex needs no escaping and is charset-independent."""
    if isinstance(value, bytes):
        return f"_binary X'{value.hex()}'"
    return str(conn.escape(value))
