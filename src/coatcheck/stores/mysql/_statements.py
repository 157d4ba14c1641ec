"""What the MySQL store says to the server, for one table: the SQL, shared by both twins.

Two tables: the sessions (InnoDB, durable) and their leases, ``<table>_leases``. A lease
needs no durable commit (a crash that loses one is harmless: the holder's write is refused
by the fencing check), so the lease table is a MEMORY table: taking or dropping a lease
never waits for a redo-log flush, while every write of a session still does. On a Galera
cluster, which does not replicate MEMORY tables, it is created as InnoDB instead; every
statement here works with either engine.

Rules that keep the two tables deadlock-free (a MEMORY table has a table lock, which
InnoDB's deadlock detector cannot see): every statement runs in autocommit mode except the
fenced write's short transaction, and no statement that touches the lease table ever waits
for a session row lock. Taking a lease reads the session with a consistent read (no row
lock); the fenced write takes the session row's lock first, in a statement of its own,
and only then checks and drops its lease.

Round trips per operation:

- read with lock: 1, a two-statement batch: an ``INSERT ... SELECT ... ON DUPLICATE KEY
  UPDATE`` that takes the lease when the session is live and the lease free (or already
  ours), then the ``SELECT ... LOCK IN SHARE MODE`` of the row (it waits for a write in
  flight to commit, so a new holder always reads the last write), with ``ROW_COUNT()``
  saying whether the lease was taken. No redo-log flush (MEMORY lease table).
- write: 1 on success. Unfenced: one statement. Fenced: a five-statement transaction
  (row lock, lease check, ``UPDATE``, ``COMMIT``) with one flush.
  ``version = LAST_INSERT_ID(version + 1)`` hands the new version back in the OK packet;
  affected rows say whether it applied (insert 1, update 2, nothing 0: CLIENT_FOUND_ROWS
  is off). Only a refused write reads the row again, to say LockLost or VersionMismatch.
- update_timestamp, release, destroy, validate_id, count: 1 each.
- gc: 1 per batch (the batch's last deadline found through the expires_at index, then a
  DELETE up to it), batches sized to take about :data:`GC_TARGET` seconds each.

Every value is bound by the driver (``%(name)s``); the table name is a validated plain
identifier. Times are the application's clock, never the server's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

SCAN_PAGE = 1000
LEASES = "_leases"
"""Suffix of the lease table's name."""

GC_START = -sys.float_info.max
"""Below every deadline: where GC's walk along the expires_at index starts (no -inf in SQL)."""

NO_TABLE = 1146
"""ER_NO_SUCH_TABLE: the statement did nothing."""
TABLE_FULL = 1114
"""ER_RECORD_FILE_FULL: the MEMORY lease table reached its size (``max_heap_table_size``)."""
DEADLOCK = 1213
"""ER_LOCK_DEADLOCK: InnoDB rolled the statement back; it had no effect and may run again."""
ATTEMPTS = 3
GC_REPORT = 1
"""In a GC batch, the statement (the DELETE) whose affected rows count."""


@dataclass(frozen=True, slots=True)
class Result:
    rowcount: int
    """Affected rows of the reported statement (the first unless told otherwise)."""
    lastrowid: int
    """``LAST_INSERT_ID(expr)`` of the reported statement, from its OK packet."""
    rows: tuple[tuple[Any, ...], ...]
    """Rows of the last result set."""


NOTHING = Result(0, 0, ())
"""What a statement on a missing table found: no rows, nothing changed."""


def error_code(e: BaseException) -> int | None:
    """The server's error number of a driver error (both drivers put it in ``args[0]``)."""
    args = getattr(e, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class Sql:
    """The statements for one table and its lease table, built once."""

    def __init__(self, table: str) -> None:
        t = f"`{table}`"
        self.table = table
        self.leases = table + LEASES
        lt = f"`{self.leases}`"
        self.create_table = (
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " storage_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
            " payload MEDIUMBLOB NOT NULL,"
            " expires_at DOUBLE NOT NULL,"
            " version BIGINT NOT NULL,"
            " PRIMARY KEY (storage_key),"
            " KEY expires_at_idx (expires_at)"
            ") ENGINE=InnoDB"
        )
        # ``taken`` changes whenever the lease is taken or renewed, so the affected-rows
        # count says whether it was, even when a clock standing still renews it unchanged.
        self.create_leases = (
            f"CREATE TABLE IF NOT EXISTS {lt} ("
            " storage_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
            " lease_token VARBINARY(255) NOT NULL,"
            " lease_until DOUBLE NOT NULL,"
            " taken BIGINT UNSIGNED NOT NULL DEFAULT 0,"
            " PRIMARY KEY (storage_key)"
            ") ENGINE={engine}"
        )
        self.drop_table = f"DROP TABLE IF EXISTS {t}, {lt}"
        # Looking first avoids the server's "already exists" note, which a driver would
        # fetch with an extra SHOW WARNINGS and log.
        self.tables_present = (
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name IN (%(table)s, %(leases)s)"
        )
        self.galera = "SHOW VARIABLES LIKE 'wsrep_on'"
        self.select = f"SELECT payload, expires_at, version FROM {t} WHERE storage_key = %(key)s"
        self._select_many = f"SELECT storage_key, payload, expires_at, version FROM {t} WHERE"
        # Take the lease if the session is live and the lease free, expired or ours. The
        # IF()s read the old values whether the server assigns left to right (MySQL) or at
        # once (MariaDB's SIMULTANEOUS_ASSIGNMENT): ``taken`` and ``lease_token`` come
        # before ``lease_until`` changes, and the last IF holds with either token. The
        # session is read without a row lock here (a statement holding the lease table
        # never waits for a row); the SELECT after it waits for a write in flight.
        free = "lease_until <= %(now)s OR lease_token = %(token)s"
        self.lock_and_select = (
            f"INSERT INTO {lt} (storage_key, lease_token, lease_until)"
            f" SELECT storage_key, %(token)s, %(until)s FROM {t}"
            " WHERE storage_key = %(key)s AND expires_at > %(now)s"
            f" ON DUPLICATE KEY UPDATE taken = IF({free}, taken + 1, taken),"
            f" lease_token = IF({free}, %(token)s, lease_token),"
            " lease_until = IF(lease_token = %(token)s OR lease_until <= %(now)s,"
            " %(until)s, lease_until);"
            f" SELECT payload, expires_at, version, ROW_COUNT() > 0 FROM {t}"
            " WHERE storage_key = %(key)s LOCK IN SHARE MODE"
        )
        columns = "(storage_key, payload, expires_at, version)"
        values = "VALUES (%(key)s, %(payload)s, %(expires_at)s, 1)"
        # Leaves any lease alone, as an unfenced write does in every store. Parameters are
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
            f"SELECT s.version, l.lease_token, l.lease_until FROM {t} s"
            f" LEFT JOIN {lt} l ON l.storage_key = s.storage_key WHERE s.storage_key = %(key)s"
        )
        self.touch = (
            f"UPDATE {t} SET expires_at = GREATEST(expires_at, %(expires_at)s)"
            " WHERE storage_key = %(key)s"
        )
        self.release = f"DELETE FROM {lt} WHERE storage_key = %(key)s AND lease_token = %(token)s"
        self.touch_release = f"{self.touch}; {self.release}"
        self.destroy = (
            f"DELETE FROM {t} WHERE storage_key = %(key)s;"
            f" DELETE FROM {lt} WHERE storage_key = %(key)s"
        )
        # A GC batch, one round trip: the deadline of the ``limit``-th expired row along
        # the expires_at index from where the last batch ended (a consistent read of the
        # index alone, so no batch walks past the entries of rows already deleted, which
        # InnoDB purges only later), then the rows up to it, oldest first (the deadline
        # checked again as each is deleted), then that deadline, to go on from (NULL: done).
        self.gc_batch = (
            f"SET @coatcheck_gc = (SELECT expires_at FROM {t} FORCE INDEX (expires_at_idx)"
            " WHERE expires_at >= %(after)s AND expires_at <= %(now)s"
            " ORDER BY expires_at LIMIT 1 OFFSET %(skip)s);"
            f" DELETE FROM {t} WHERE expires_at >= %(after)s"
            " AND expires_at <= COALESCE(@coatcheck_gc, %(now)s)"
            " ORDER BY expires_at LIMIT %(limit)s;"
            " SELECT @coatcheck_gc"
        )
        self.gc_leases = f"DELETE FROM {lt} WHERE lease_until <= %(now)s"
        self.validate = f"SELECT 1 FROM {t} WHERE storage_key = %(key)s AND expires_at > %(now)s"
        self.count = f"SELECT COUNT(*) FROM {t} WHERE expires_at > %(now)s"
        self.count_expired = f"SELECT COUNT(*) FROM {t} WHERE expires_at <= %(now)s"
        self.scan = (
            "SELECT s.storage_key, s.expires_at, LENGTH(s.payload), l.lease_until > %(now)s"
            f" FROM {t} s LEFT JOIN {lt} l ON l.storage_key = s.storage_key"
            " WHERE s.storage_key > %(after)s AND s.expires_at > %(now)s"
            f" ORDER BY s.storage_key LIMIT {SCAN_PAGE}"
        )
        self._updates = {
            (fenced, versioned): self._update(t, lt, fenced, versioned)
            for fenced in (False, True)
            for versioned in (False, True)
        }

    @staticmethod
    def _update(t: str, lt: str, fenced: bool, versioned: bool) -> tuple[str, int]:
        sql = (
            f"UPDATE {t} SET payload = %(payload)s, expires_at = %(expires_at)s,"
            " version = LAST_INSERT_ID(version + 1) WHERE storage_key = %(key)s"
        )
        if versioned:
            sql += " AND version = %(expect)s"
        if not fenced:
            return sql, 0
        # The session row's lock first, by an UPDATE that changes nothing, so the statements
        # after it that touch the lease table never wait for a row lock; a new holder's
        # locking read then waits for this COMMIT, so it reads this write.
        lock_row = (
            f"START TRANSACTION; UPDATE {t} SET version = version WHERE storage_key = %(key)s"
        )
        holds = "storage_key = %(key)s AND lease_token = %(token)s AND lease_until > %(now)s"
        if not versioned:
            # Drop the lease if it holds, and write only if it did (the usual write).
            return (
                f"{lock_row}; DELETE FROM {lt} WHERE {holds}; {sql} AND ROW_COUNT() = 1; COMMIT",
                3,
            )
        # A versioned write keeps its lock when the version is wrong: write if the lease
        # holds (LOCK IN SHARE MODE keeps an InnoDB lease table's row until COMMIT), then
        # drop the lease only if the write applied.
        return (
            f"{lock_row}; {sql} AND EXISTS (SELECT 1 FROM {lt} WHERE {holds} LOCK IN SHARE MODE);"
            f" DELETE FROM {lt} WHERE storage_key = %(key)s AND lease_token = %(token)s"
            " AND ROW_COUNT() = 1; COMMIT",
            2,
        )

    def select_many(self, count: int) -> str:
        """read_many's statement for ``count`` keys, bound as ``%(k0)s`` to ``%(k<count-1>)s``."""
        marks = ", ".join(f"%(k{i})s" for i in range(count))
        return f"{self._select_many} storage_key IN ({marks})"

    def update(self, fenced: bool, versioned: bool) -> tuple[str, int]:
        """The conditional UPDATE for a write that may not create the row, and which
        statement of its batch says whether it applied."""
        return self._updates[fenced, versioned]
