"""The MySQL/MariaDB store, written once: the async twin (on asyncmy) is the source, and
the sync twin (on PyMySQL) is generated from it by scripts/unasync.py.

Like PHP's PDO/MySQL session handlers, one row per session; unlike most of them, locks are
leases in the row (``lock_token``, ``lock_until``), so a crashed request's lock runs out
instead of being held by a stuck connection, and every write is fenced by the token. The
statements are in :mod:`._statements`; the driver and its pool are behind
:mod:`._driver_asyncmy`, the one module that differs between the twins.

Reads and admin calls on a missing table find nothing and create nothing; the first write
or lock creates it, unless the URL says ``create_schema=false`` (then ``coatcheck init``
or :meth:`create_schema` must have).
"""

# unasync: _driver_asyncmy -> _driver_pymysql

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ... import ids
from ...errors import LockLost, VersionMismatch
from ...locks import Row, changed, check_write, lease_lost
from .._url import MissingTable
from ..base import LOCKED, MUST_CREATE, AsyncStore, LockRequest, Meta, ReadResult, Stored
from ._config import Settings
from ._driver_asyncmy import DRIVER_ERRORS, AsyncConnection, AsyncPool
from ._statements import (
    ATTEMPTS,
    DEADLOCK,
    GC_BATCH,
    NO_TABLE,
    NOTHING,
    SCAN_PAGE,
    Result,
    Sql,
    error_code,
)


class AsyncMySQLStore(AsyncStore):
    """A MySQL/MariaDB store on a connection pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = settings.table
        self._sql = Sql(settings.table)
        self._pool = AsyncPool(settings)

    def __repr__(self) -> str:  # no credentials
        return f"<AsyncMySQLStore {self.settings.where} table={self.table}>"

    # --- running statements ----------------------------------------------------------------

    async def _execute(self, sql: str, args: dict[str, Any], *, creates: bool = False) -> Result:
        """Run one statement (or batch), retrying a deadlock victim (it had no effect).

        On a missing table it found NOTHING; with ``creates`` (a write or a lock) the table
        is created first when the URL allows it.
        """
        try:
            async with self._pool.connection() as conn:
                attempt = 0
                while True:
                    try:
                        return await _run(conn, sql, args)
                    except DRIVER_ERRORS as e:
                        code = error_code(e)
                        if code == NO_TABLE and not creates:
                            return NOTHING
                        if code == NO_TABLE and not self.settings.create_schema:
                            missing = MissingTable(self.table)
                            raise self.settings.unavailable(missing, "write") from e
                        if code == NO_TABLE and attempt == 0:
                            await self._create_table(conn)
                        elif code != DEADLOCK or attempt == ATTEMPTS - 1:
                            raise
                    attempt += 1
        except DRIVER_ERRORS as e:
            raise self.settings.unavailable(e, "query", args.get("key")) from e

    async def _create_table(self, conn: AsyncConnection) -> None:
        exists = await _run(conn, self._sql.table_exists, {"table": self.table})
        if not exists.rows:
            await _run(conn, self._sql.create_table, {})

    # --- the contract ----------------------------------------------------------------------

    async def close(self) -> None:
        await self._pool.close()

    async def create_schema(self) -> None:
        """Create the sessions table and its index if missing (``coatcheck init``); safe to
        call any time, whatever the URL's ``create_schema`` says."""
        try:
            async with self._pool.connection() as conn:
                await self._create_table(conn)
        except DRIVER_ERRORS as e:
            raise self.settings.unavailable(e, "create schema") from e

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        args: dict[str, Any] = {"key": ids.check_storage_key(key)}
        if lock is None:
            result = await self._execute(self._sql.select, args)
            if not result.rows:
                return None
            payload, expires_at, version = result.rows[0]
            return Stored(bytes(payload), expires_at, version)
        now = self.clock()
        args.update(token=lock.token, now=now, until=now + lock.lease)
        result = await self._execute(self._sql.lock_and_select, args, creates=True)
        if not result.rows:
            return None
        payload, expires_at, version, held = result.rows[0]
        if expires_at > now and not held:
            return LOCKED
        return Stored(bytes(payload), expires_at, version)

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        key, now = ids.check_storage_key(key), self.clock()
        args: dict[str, Any] = {"key": key, "payload": payload, "expires_at": expires_at}
        if token is None and expect in (None, MUST_CREATE):
            statement = self._sql.upsert if expect is None else self._sql.insert_new
            result = await self._execute(statement, args, creates=True)
            if result.rowcount == 1:
                return 1  # inserted
            if result.rowcount == 2:
                return result.lastrowid  # updated: LAST_INSERT_ID(version + 1)
        elif not (token is not None and expect == MUST_CREATE):  # that pair never applies
            versioned = expect is not None and expect > 0
            args.update(token=token, now=now, expect=expect)
            result = await self._execute(self._sql.update(token is not None, versioned), args)
            if result.rowcount == 1:
                return result.lastrowid
        raise await self._refusal(key, expect, token, now)

    async def _refusal(
        self, key: str, expect: int | None, token: str | None, now: float
    ) -> Exception:
        """Why a write did not apply: LockLost before VersionMismatch, as the rows say."""
        result = await self._execute(self._sql.lock_state, {"key": key})
        row = None
        if result.rows:
            version, held_by, lock_until = result.rows[0]
            held = None if held_by is None else bytes(held_by).decode("utf-8", "replace")
            row = Row(b"", 0.0, version, held, lock_until)
        try:
            check_write(row, expect, token, now)
        except (LockLost, VersionMismatch) as e:
            return e
        # The row changed between the refused write and this look: still refused.
        return lease_lost() if token is not None else changed()

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        """Extend (never shorten) the deadline of an existing row and drop ``token``'s lock."""
        args = {"key": ids.check_storage_key(key), "expires_at": expires_at, "token": token}
        await self._execute(self._sql.touch if token is None else self._sql.touch_release, args)

    async def release(self, key: str, token: str) -> None:
        await self._execute(self._sql.release, {"key": ids.check_storage_key(key), "token": token})

    async def destroy(self, key: str) -> None:
        await self._execute(self._sql.destroy, {"key": ids.check_storage_key(key)})

    async def gc(self) -> int:
        """Delete expired rows, 1000 per statement so none holds many row locks for long
        (PHP's gc with session.gc_maxlifetime)."""
        now, removed = self.clock(), 0
        while True:
            result = await self._execute(self._sql.gc, {"now": now})
            removed += result.rowcount
            if result.rowcount < GC_BATCH:
                return removed

    async def validate_id(self, key: str) -> bool:
        args = {"key": ids.check_storage_key(key), "now": self.clock()}
        result = await self._execute(self._sql.validate, args)
        return bool(result.rows)

    async def count(self) -> int:
        result = await self._execute(self._sql.count, {"now": self.clock()})
        return int(result.rows[0][0]) if result.rows else 0

    async def scan(self) -> AsyncIterator[Meta]:
        """Live rows in key order, a page at a time (keyset paging: bounded memory)."""
        now, after = self.clock(), ""
        while True:
            result = await self._execute(self._sql.scan, {"after": after, "now": now})
            for k, expires_at, size, locked in result.rows:
                yield Meta(k, expires_at, int(size), bool(locked))
            if len(result.rows) < SCAN_PAGE:
                return
            after = result.rows[-1][0]


async def _run(conn: AsyncConnection, sql: str, args: dict[str, Any]) -> Result:
    """One round trip: the values bound by the driver, the last result set's rows kept."""
    async with conn.cursor() as cur:
        rowcount = await cur.execute(sql, args or None)
        lastrowid = cur.lastrowid or 0
        rows = await cur.fetchall()
        while await cur.nextset():
            rows = await cur.fetchall()
    return Result(rowcount, lastrowid, tuple(rows))
