"""``mysql://`` and ``mariadb://``: sessions in a MySQL or MariaDB table (PyMySQL, aiomysql).

Like PHP's PDO/MySQL session handlers, one row per session; unlike most of them, locks
are leases in the row (``lock_token``, ``lock_until``), so a crashed request's lock runs
out instead of being held by a stuck connection, and every write is fenced by the token.
The statements and the number of round trips are in :mod:`.mysql_ops`; URL options in
:mod:`.mysql_config`; this module runs the operations over a pool of PyMySQL connections.
Sessions run in autocommit at READ COMMITTED: each statement is its own transaction and
takes no gap locks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

import pymysql  # type: ignore[import-untyped]

from . import mysql_ops as ops
from .base import LockRequest, Meta, ReadResult, Store
from .mysql_config import Settings, parse, unavailable
from .mysql_ops import Flow, Query, Result, Sql
from .mysql_pool import Connection, ConnectionPool

if TYPE_CHECKING:  # aiomysql is imported only when an async store is opened
    from .mysql_async import AsyncMySQLStore

T = TypeVar("T")

DRIVER_ERRORS = (pymysql.err.MySQLError, OSError)  # TimeoutError is an OSError


def check_key(key: str) -> str:
    """Storage keys are SHA-256 hex digests: 64 ASCII characters at most fit the column."""
    if len(key) > 64 or not key.isascii():
        raise ValueError("mysql store keys are at most 64 ASCII characters (a storage key)")
    return key


class MySQLStore(Store):
    """A sync store on a pool of PyMySQL connections."""

    scheme = "mysql"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = settings.table
        self._sql = Sql(settings.table)
        self._pool = ConnectionPool(
            self._connect, settings.pool_size, settings.pool_timeout, settings.where
        )
        self._schema_ready = False

    def __repr__(self) -> str:  # no credentials
        return f"<MySQLStore {self.settings.where} table={self.table}>"

    def _connect(self) -> Connection:
        return pymysql.connect(**self.settings.pymysql_args())

    # --- running flows --------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        try:
            with self._pool.connection() as conn:
                if not self._schema_ready:
                    self._drive(conn, ops.create_schema(self._sql))
                    self._schema_ready = True
                return self._drive(conn, flow)
        except DRIVER_ERRORS as e:
            raise unavailable(e, self.settings.where) from e
        finally:
            flow.close()

    def _drive(self, conn: Connection, flow: Flow[T]) -> T:
        try:
            query = next(flow)
            while True:
                query = flow.send(self._execute(conn, query))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _execute(self, conn: Connection, query: Query) -> Result:
        attempt = 0
        while True:
            try:
                with conn.cursor() as cur:
                    cur.execute(query.sql, query.args)
                    rowcount, lastrowid = cur.rowcount, cur.lastrowid
                    rows = cur.fetchall()
                    while cur.nextset():  # a batch: keep the last result set
                        rows = cur.fetchall()
                return Result(rowcount, lastrowid or 0, tuple(rows))
            except pymysql.err.MySQLError as e:
                action = ops.retry(e, attempt)
                if action is None:
                    raise
                if action == "schema":
                    self._drive(conn, ops.create_schema(self._sql))
                attempt += 1

    # --- the contract ---------------------------------------------------------------------

    def open(self) -> None:
        """Connect once and create the table if needed (PHP's open)."""
        self.create_schema()

    def close(self) -> None:
        self._pool.close()

    def create_schema(self) -> None:
        """Create the sessions table and its index if missing; safe to call any time."""
        self._run(ops.create_schema(self._sql))
        self._schema_ready = True

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return self._run(ops.read(self._sql, check_key(key), lock, time.time()))

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        flow = ops.write(self._sql, check_key(key), payload, expires_at, expect, token, time.time())
        return self._run(flow)

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        self._run(ops.update_timestamp(self._sql, check_key(key), expires_at, token))

    def release(self, key: str, token: str) -> None:
        self._run(ops.release(self._sql, check_key(key), token))

    def destroy(self, key: str) -> None:
        self._run(ops.destroy(self._sql, check_key(key)))

    def gc(self) -> int:
        """Delete expired rows, 1000 per statement (PHP's gc with session.gc_maxlifetime)."""
        return self._run(ops.gc(self._sql, time.time()))

    def validate_id(self, key: str) -> bool:
        return self._run(ops.validate_id(self._sql, check_key(key), time.time()))

    def count(self) -> int:
        return self._run(ops.count(self._sql, time.time()))

    def scan(self) -> Iterator[Meta]:
        now, after = time.time(), ""
        while True:
            page = self._run(ops.scan_page(self._sql, after, now))
            yield from page
            if len(page) < ops.SCAN_PAGE:
                return
            after = page[-1].key


def open_sync(url: str) -> Store:
    """The sync store for a ``mysql://`` or ``mariadb://`` URL."""
    return MySQLStore(parse(url))


def open_async(url: str) -> AsyncMySQLStore:
    """The async (aiomysql) store for the same URL."""
    from .mysql_async import AsyncMySQLStore

    return AsyncMySQLStore(parse(url))


def drop_namespace(url: str) -> None:
    """Drop the URL's sessions table (tests use one table per test)."""
    settings = parse(url)
    try:
        conn = pymysql.connect(**settings.pymysql_args())
        try:
            with conn.cursor() as cur:
                cur.execute(Sql(settings.table).drop_table)
        finally:
            conn.close()
    except DRIVER_ERRORS as e:
        raise unavailable(e, settings.where) from e
