# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The MySQL/MariaDB store, written once: the async twin (on asyncmy) is the source, and
the sync twin (on PyMySQL) is generated from it by scripts/unasync.py.

Like PHP's PDO/MySQL session handlers, one row per session; unlike most of them, locks are
leases (``lease_token``, ``lease_until``) in a lease table beside the sessions, so a
crashed request's lock runs out instead of being held by a stuck connection, taking one
costs no redo-log flush, and every write is fenced by the token. The statements are in
:mod:`._statements`; the driver and its pool are behind :mod:`._driver_pymysql`, the one
module that differs between the twins.

Reads and admin calls on a missing table find nothing and create nothing; the first write
or lock creates the tables, unless the URL says ``create_schema=false`` (then ``coatcheck
init`` or :meth:`create_schema` must have).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, cast

from ... import ids
from ...errors import LockLost, VersionMismatch
from ...locks import Row, changed, check_write, lease_lost
from .._gc import GcPace
from .._url import MissingTable
from ..base import LOCKED, MUST_CREATE, LockRequest, Meta, ReadResult, Store, Stored
from ._config import Settings
from ._driver_pymysql import DRIVER_ERRORS, Connection, Pool
from ._statements import (
    ATTEMPTS,
    DEADLOCK,
    GC_REPORT,
    GC_START,
    NO_TABLE,
    NOTHING,
    SCAN_PAGE,
    TABLE_FULL,
    Result,
    Sql,
    error_code,
)


class MySQLStore(Store):
    """A MySQL/MariaDB store on a connection pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = settings.table
        self._sql = Sql(settings.table)
        self._pool = Pool(settings)

    def __repr__(self) -> str:  # no credentials
        return f"<MySQLStore {self.settings.where} table={self.table}>"

    # --- running statements ----------------------------------------------------------------

    def _execute(
        self, sql: str, args: dict[str, Any], *, creates: bool = False, report: int = 0
    ) -> Result:
        """Run one statement (or batch), retrying a deadlock victim (it had no effect).

        On a missing table it found NOTHING; with ``creates`` (a write or a lock) the
        tables are created first when the URL allows it. A full lease table is purged of
        expired leases and the statement tried again. ``report``: the statement of a batch
        whose affected rows and last insert id the result carries.
        """
        try:
            with self._pool.connection() as conn:
                attempt = 0
                while True:
                    try:
                        return _run(conn, sql, args, report)
                    except DRIVER_ERRORS as e:
                        code = error_code(e)
                        if code == NO_TABLE and not creates:
                            conn.rollback()  # a batch may have opened a transaction
                            return NOTHING
                        if code == NO_TABLE and not self.settings.create_schema:
                            missing = MissingTable(self._missing(e))
                            raise self.settings.unavailable(missing, "write") from e
                        if code == NO_TABLE and attempt == 0:
                            self._create_table(conn)
                        elif code == TABLE_FULL and attempt == 0:
                            _run(conn, self._sql.gc_leases, {"now": self.clock()})
                        elif code != DEADLOCK or attempt == ATTEMPTS - 1:
                            raise
                    attempt += 1
        except DRIVER_ERRORS as e:
            raise self.settings.unavailable(e, "query", args.get("key")) from e

    def _missing(self, e: BaseException) -> str:
        """Which of the two tables a "no such table" error is about."""
        leases = self._sql.leases
        return leases if f".{leases}'" in str(e) or f"'{leases}'" in str(e) else self.table

    def _create_table(self, conn: Connection) -> None:
        """Create whichever of the two tables is missing (the lease table may be new)."""
        names = {"table": self.table, "leases": self._sql.leases}
        present = {row[0] for row in (_run(conn, self._sql.tables_present, names)).rows}
        if self.table not in present:
            _run(conn, self._sql.create_table, {})
        if self._sql.leases not in present:
            # Galera replicates InnoDB tables only: there the leases must be InnoDB too.
            galera = (_run(conn, self._sql.galera, {})).rows
            on = bool(galera) and str(galera[0][1]).upper() == "ON"
            engine = "InnoDB" if on else "MEMORY"
            _run(conn, self._sql.create_leases.replace("{engine}", engine), {})

    # --- the contract ----------------------------------------------------------------------

    def close(self) -> None:
        self._pool.close()

    def create_schema(self) -> None:
        """Create the sessions table and its lease table if missing (``coatcheck init``);
        safe to call any time, whatever the URL's ``create_schema`` says."""
        try:
            with self._pool.connection() as conn:
                self._create_table(conn)
        except DRIVER_ERRORS as e:
            raise self.settings.unavailable(e, "create schema") from e

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        args: dict[str, Any] = {"key": ids.check_storage_key(key)}
        if lock is None:
            result = self._execute(self._sql.select, args)
            if not result.rows:
                return None
            payload, expires_at, version = result.rows[0]
            return Stored(bytes(payload), expires_at, version)
        now = self.clock()
        args.update(token=lock.token, now=now, until=now + lock.lease)
        result = self._execute(self._sql.lock_and_select, args, creates=True)
        if not result.rows:
            return None
        payload, expires_at, version, held = result.rows[0]
        if expires_at > now and not held:
            return LOCKED
        return Stored(bytes(payload), expires_at, version)

    def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The records under ``keys`` in one statement, without locks (admin)."""
        if not keys:
            return []
        args = {f"k{i}": ids.check_storage_key(key) for i, key in enumerate(keys)}
        result = self._execute(self._sql.select_many(len(keys)), args)
        found = {
            key: Stored(bytes(payload), expires_at, version)
            for key, payload, expires_at, version in result.rows
        }
        return [found.get(key) for key in keys]

    def write(
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
            result = self._execute(statement, args, creates=True)
            if result.rowcount == 1:
                return 1  # inserted
            if result.rowcount == 2:
                return result.lastrowid  # updated: LAST_INSERT_ID(version + 1)
        elif not (token is not None and expect == MUST_CREATE):  # that pair never applies
            versioned = expect is not None and expect > 0
            args.update(token=token, now=now, expect=expect)
            statement, report = self._sql.update(token is not None, versioned)
            result = self._execute(statement, args, report=report)
            if result.rowcount == 1:
                return result.lastrowid
        raise self._refusal(key, expect, token, now)

    def _refusal(self, key: str, expect: int | None, token: str | None, now: float) -> Exception:
        """Why a write did not apply: LockLost before VersionMismatch, as the rows say."""
        result = self._execute(self._sql.lock_state, {"key": key})
        row = None
        if result.rows:
            version, held_by, lock_until = result.rows[0]  # lease columns NULL: no lease
            held = None if held_by is None else bytes(held_by).decode("utf-8", "replace")
            row = Row(b"", 0.0, version, held, lock_until or 0.0)
        try:
            check_write(row, expect, token, now)
        except (LockLost, VersionMismatch) as e:
            return e
        # The row changed between the refused write and this look: still refused.
        return lease_lost() if token is not None else changed()

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        """Extend (never shorten) the deadline of an existing row and drop ``token``'s lock."""
        args = {"key": ids.check_storage_key(key), "expires_at": expires_at, "token": token}
        self._execute(self._sql.touch if token is None else self._sql.touch_release, args)

    def release(self, key: str, token: str) -> None:
        self._execute(self._sql.release, {"key": ids.check_storage_key(key), "token": token})

    def destroy(self, key: str) -> None:
        self._execute(self._sql.destroy, {"key": ids.check_storage_key(key)})

    def gc(self) -> int:
        """Delete expired rows (PHP's gc with session.gc_maxlifetime), then expired leases;
        see :meth:`gc_batches`."""
        removed = 0
        for deleted in self.gc_batches():
            removed += deleted
        return removed

    def gc_batches(self) -> Iterator[int]:
        """Delete expired rows batch by batch along the expires_at index, each batch sized
        to take about GC_TARGET seconds, so no statement holds many row locks for long;
        yields each batch's count. Expired leases go after the last batch."""
        now, after, pace = self.clock(), GC_START, GcPace()
        while True:
            started = time.perf_counter()
            args = {"after": after, "now": now, "skip": pace.size - 1, "limit": pace.size}
            batch = self._execute(self._sql.gc_batch, args, report=GC_REPORT)
            yield batch.rowcount
            upto = batch.rows[0][0] if batch.rows else None
            if upto is None:  # fewer than a batch were left: all deleted (or no table)
                break
            pace.done(batch.rowcount, time.perf_counter() - started)
            after = upto
        self._execute(self._sql.gc_leases, {"now": now})

    def gc_pending(self) -> int:
        """How many expired rows :meth:`gc` would delete now (an index range count)."""
        result = self._execute(self._sql.count_expired, {"now": self.clock()})
        return int(result.rows[0][0]) if result.rows else 0

    def has_schema(self) -> bool:
        """Whether both tables exist (``coatcheck init`` or a first write made them)."""
        names = {"table": self.table, "leases": self._sql.leases}
        result = self._execute(self._sql.tables_present, names)
        return len(result.rows) == 2

    def validate_id(self, key: str) -> bool:
        args = {"key": ids.check_storage_key(key), "now": self.clock()}
        result = self._execute(self._sql.validate, args)
        return bool(result.rows)

    def count(self) -> int:
        result = self._execute(self._sql.count, {"now": self.clock()})
        return int(result.rows[0][0]) if result.rows else 0

    def scan(self) -> Iterator[Meta]:
        """Live rows in key order, a page at a time (keyset paging: bounded memory)."""
        now, after = self.clock(), ""
        while True:
            result = self._execute(self._sql.scan, {"after": after, "now": now})
            for k, expires_at, size, locked in result.rows:  # locked is NULL: no lease
                yield Meta(k, expires_at, int(size), bool(locked))
            if len(result.rows) < SCAN_PAGE:
                return
            after = result.rows[-1][0]


def _run(conn: Connection, sql: str, args: dict[str, Any], report: int = 0) -> Result:
    """One round trip: the values bound by the driver, the last result set's rows kept,
    and the affected rows and last insert id of statement ``report`` of the batch."""
    with conn.cursor() as cur:
        rowcount = cur.execute(sql, args or None)
        lastrowid = cur.lastrowid or 0
        rows = cur.fetchall()
        index = 0
        while cur.nextset():
            index += 1
            if index == report:
                rowcount, lastrowid = cast(int, cur.rowcount), cur.lastrowid or 0
            rows = cur.fetchall()
    return Result(rowcount, lastrowid, tuple(rows))
