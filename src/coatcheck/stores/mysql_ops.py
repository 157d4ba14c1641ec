"""What the MySQL store says to the server, written once for the sync and async stores.

Each store operation is a generator (a "flow") that yields :class:`Query` objects and is
sent back a :class:`Result` for each; ``mysql.py`` runs the same flows over PyMySQL or
aiomysql. Round trips per operation:

- read with lock: 1, a two-statement batch: a conditional ``UPDATE`` that takes the lease
  when it is free (or already ours), then the ``SELECT`` that returns the row and whether
  we hold it. MySQL has no ``UPDATE ... RETURNING``; a ``SELECT ... FOR UPDATE``
  transaction would need 3-4 round trips.
- write: 1 on success. ``version = LAST_INSERT_ID(version + 1)`` hands the new version
  back in the OK packet; affected rows say whether it applied (insert 1, update 2,
  nothing 0: CLIENT_FOUND_ROWS is off). Only a refused write reads the row again, to
  say LockLost or VersionMismatch.
- update_timestamp, release, destroy, validate_id, count: 1 each; gc: 1 per 1000 rows.

Times are the application's clock (``time.time()``), as the engine computes deadlines
with it; the server's clock is never used.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from ..errors import LockLost, VersionMismatch
from ..locks import Row, check_write
from .base import LOCKED, MUST_CREATE, LockRequest, Meta, ReadResult, Stored

T = TypeVar("T")

GC_BATCH = 1000
SCAN_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Query:
    sql: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Result:
    rowcount: int
    """Affected rows of the first statement."""
    lastrowid: int
    """``LAST_INSERT_ID(expr)`` of the first statement, from its OK packet."""
    rows: tuple[tuple[Any, ...], ...]
    """Rows of the last result set."""


Flow = Generator[Query, Result, T]


class Sql:
    """The statements for one table, built once."""

    def __init__(self, table: str) -> None:
        t = f"`{table}`"
        self.create_table = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " storage_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
            " payload MEDIUMBLOB NOT NULL,"
            " expires_at DOUBLE NOT NULL,"
            " version BIGINT NOT NULL,"
            " lock_token VARBINARY(255) NULL,"
            " lock_until DOUBLE NOT NULL DEFAULT 0,"
            " PRIMARY KEY (storage_key),"
            " KEY expires_at_idx (expires_at)"
            ") ENGINE=InnoDB"
        )
        self.drop_table = f"DROP TABLE IF EXISTS {t}"
        self.table_exists = (
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = %(table)s"
        )
        self.table = table
        self.select = f"SELECT payload, expires_at, version FROM {t} WHERE storage_key = %(key)s"
        # The whole lease condition sits in WHERE, so the SET order cannot matter (MySQL
        # evaluates SET left to right with updated values, MariaDB may assign simultaneously).
        self.lock_and_select = (
            f"UPDATE {t} SET lock_until = %(until)s, lock_token = %(token)s"
            " WHERE storage_key = %(key)s AND expires_at > %(now)s"
            " AND (lock_token IS NULL OR lock_until <= %(now)s OR lock_token = %(token)s);"
            " SELECT payload, expires_at, version,"
            " lock_token = %(token)s AND lock_until > %(now)s"
            f" FROM {t} WHERE storage_key = %(key)s"
        )
        columns = "(storage_key, payload, expires_at, version, lock_token, lock_until)"
        values = "VALUES (%(key)s, %(payload)s, %(expires_at)s, 1, NULL, 0)"
        # Keeps a lock this writer does not own, as the reference rows do. Parameters are
        # repeated rather than VALUES(col): MySQL 8 warns on VALUES(), MariaDB lacks aliases.
        self.upsert = (
            f"INSERT INTO {t} {columns} {values} ON DUPLICATE KEY UPDATE"
            " payload = %(payload)s, expires_at = %(expires_at)s,"
            " version = LAST_INSERT_ID(version + 1)"
        )
        self.insert_new = (
            f"INSERT INTO {t} {columns} {values} ON DUPLICATE KEY UPDATE version = version"
        )
        self.lock_state = (
            f"SELECT version, lock_token, lock_until FROM {t} WHERE storage_key = %(key)s"
        )
        self.touch = (
            f"UPDATE {t} SET expires_at = GREATEST(expires_at, %(expires_at)s)"
            " WHERE storage_key = %(key)s"
        )
        # lock_until is assigned first: its IF must see the old lock_token in either SET mode.
        self.touch_release = (
            f"UPDATE {t} SET expires_at = GREATEST(expires_at, %(expires_at)s),"
            " lock_until = IF(lock_token = %(token)s, 0, lock_until),"
            " lock_token = IF(lock_token = %(token)s, NULL, lock_token)"
            " WHERE storage_key = %(key)s"
        )
        self.release = (
            f"UPDATE {t} SET lock_until = 0, lock_token = NULL"
            " WHERE storage_key = %(key)s AND lock_token = %(token)s"
        )
        self.destroy = f"DELETE FROM {t} WHERE storage_key = %(key)s"
        self.gc = f"DELETE FROM {t} WHERE expires_at <= %(now)s LIMIT {GC_BATCH}"
        self.validate = f"SELECT 1 FROM {t} WHERE storage_key = %(key)s AND expires_at > %(now)s"
        self.count = f"SELECT COUNT(*) FROM {t} WHERE expires_at > %(now)s"
        self.scan = (
            f"SELECT storage_key, expires_at, LENGTH(payload),"
            " lock_token IS NOT NULL AND lock_until > %(now)s"
            f" FROM {t} WHERE storage_key > %(after)s AND expires_at > %(now)s"
            f" ORDER BY storage_key LIMIT {SCAN_PAGE}"
        )
        self._updates: dict[tuple[bool, bool], str] = {}
        for fenced in (False, True):
            for versioned in (False, True):
                self._updates[fenced, versioned] = self._update(t, fenced, versioned)

    @staticmethod
    def _update(t: str, fenced: bool, versioned: bool) -> str:
        sql = (
            f"UPDATE {t} SET payload = %(payload)s, expires_at = %(expires_at)s,"
            " version = LAST_INSERT_ID(version + 1)"
        )
        if fenced:  # the write releases the lock it was fenced by
            sql += ", lock_until = 0, lock_token = NULL"
        sql += " WHERE storage_key = %(key)s"
        if fenced:
            sql += " AND lock_token = %(token)s AND lock_until > %(now)s"
        if versioned:
            sql += " AND version = %(expect)s"
        return sql

    def update(self, fenced: bool, versioned: bool) -> str:
        """The conditional UPDATE for a write that may not create the row."""
        return self._updates[fenced, versioned]


def read(sql: Sql, key: str, lock: LockRequest | None, now: float) -> Flow[ReadResult]:
    """Fetch the row; with ``lock``, take the lease in the same round trip."""
    if lock is None:
        result = yield Query(sql.select, {"key": key})
        if not result.rows:
            return None
        payload, expires_at, version = result.rows[0]
        return Stored(bytes(payload), expires_at, version)
    args = {"key": key, "token": lock.token, "now": now, "until": now + lock.lease}
    result = yield Query(sql.lock_and_select, args)
    if not result.rows:
        return None
    payload, expires_at, version, held = result.rows[0]
    if expires_at > now and not held:
        return LOCKED
    return Stored(bytes(payload), expires_at, version)


def write(
    sql: Sql,
    key: str,
    payload: bytes,
    expires_at: float,
    expect: int | None,
    token: str | None,
    now: float,
) -> Flow[int]:
    """Store the payload if the fencing and version checks pass; return the new version."""
    args = {"key": key, "payload": payload, "expires_at": expires_at}
    if token is None and expect in (None, MUST_CREATE):
        statement = sql.upsert if expect is None else sql.insert_new
        result = yield Query(statement, args)
        if result.rowcount == 1:
            return 1  # inserted
        if result.rowcount == 2:
            return result.lastrowid  # updated: LAST_INSERT_ID(version + 1)
    elif not (token is not None and expect == MUST_CREATE):  # that pair can never apply
        versioned = expect is not None and expect > 0
        statement = sql.update(token is not None, versioned)
        result = yield Query(statement, {**args, "token": token, "now": now, "expect": expect})
        if result.rowcount == 1:
            return result.lastrowid
    return (yield from _refused(sql, key, expect, token, now))


def _refused(
    sql: Sql, key: str, expect: int | None, token: str | None, now: float
) -> Flow[NoReturn]:
    """Say why a write did not apply: LockLost before VersionMismatch, as the rows do."""
    result = yield Query(sql.lock_state, {"key": key})
    row = None
    if result.rows:
        version, held_by, lock_until = result.rows[0]
        held = None if held_by is None else bytes(held_by).decode("utf-8", "replace")
        row = Row(b"", 0.0, version, held, lock_until)
    check_write(row, expect, token, now)
    # The row changed between the refused write and this look: still refused.
    if token is not None:
        raise LockLost("the session lock's lease expired before the write; nothing was written")
    raise VersionMismatch("the session changed since it was read")


def update_timestamp(sql: Sql, key: str, expires_at: float, token: str | None) -> Flow[None]:
    """Extend (never shorten) the deadline of an existing row and drop ``token``'s lock."""
    statement = sql.touch if token is None else sql.touch_release
    yield Query(statement, {"key": key, "expires_at": expires_at, "token": token})


def release(sql: Sql, key: str, token: str) -> Flow[None]:
    yield Query(sql.release, {"key": key, "token": token})


def destroy(sql: Sql, key: str) -> Flow[None]:
    yield Query(sql.destroy, {"key": key})


def gc(sql: Sql, now: float) -> Flow[int]:
    """Delete expired rows in batches, so no statement holds many row locks for long."""
    removed = 0
    while True:
        result = yield Query(sql.gc, {"now": now})
        removed += result.rowcount
        if result.rowcount < GC_BATCH:
            return removed


def validate_id(sql: Sql, key: str, now: float) -> Flow[bool]:
    result = yield Query(sql.validate, {"key": key, "now": now})
    return bool(result.rows)


def count(sql: Sql, now: float) -> Flow[int]:
    result = yield Query(sql.count, {"now": now})
    return int(result.rows[0][0])


def scan_page(sql: Sql, after: str, now: float) -> Flow[list[Meta]]:
    """One page of live rows after ``after`` in key order (keyset paging, bounded memory)."""
    result = yield Query(sql.scan, {"after": after, "now": now})
    return [Meta(k, e, int(size), bool(locked)) for k, e, size, locked in result.rows]


def create_schema(sql: Sql) -> Flow[None]:
    """Create the table unless it exists (looking first avoids the server's "already
    exists" note, which aiomysql turns into an extra round trip and a Python warning)."""
    result = yield Query(sql.table_exists, {"table": sql.table})
    if not result.rows:
        yield Query(sql.create_table, {})


NO_TABLE = 1146
DEADLOCK = 1213
ATTEMPTS = 3


def retry(error: BaseException, attempt: int) -> str | None:
    """How to retry a statement the server refused without running it, if at all.

    "schema": the table is missing (dropped meanwhile): create it, then run again.
    "again": InnoDB rolled the statement back as a deadlock victim; it had no effect.
    """
    args: tuple[Any, ...] = getattr(error, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code == NO_TABLE and attempt == 0:
        return "schema"
    if code == DEADLOCK and attempt < ATTEMPTS - 1:
        return "again"
    return None
