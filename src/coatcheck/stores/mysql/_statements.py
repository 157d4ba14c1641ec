"""What the MySQL store says to the server, for one table: the SQL, shared by both twins.

Round trips per operation:

- read with lock: 1, a two-statement batch: a conditional ``UPDATE`` that takes the lease
  when it is free (or already ours), then the ``SELECT`` that returns the row and whether
  we hold it. MySQL has no ``UPDATE ... RETURNING``; a ``SELECT ... FOR UPDATE``
  transaction would need 3-4 round trips.
- write: 1 on success. ``version = LAST_INSERT_ID(version + 1)`` hands the new version
  back in the OK packet; affected rows say whether it applied (insert 1, update 2,
  nothing 0: CLIENT_FOUND_ROWS is off). Only a refused write reads the row again, to
  say LockLost or VersionMismatch.
- update_timestamp, release, destroy, validate_id, count: 1 each; gc: 1 per 1000 rows.

Every value is bound by the driver (``%(name)s``); the table name is a validated plain
identifier. Times are the application's clock, never the server's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GC_BATCH = 1000
SCAN_PAGE = 1000

NO_TABLE = 1146
"""ER_NO_SUCH_TABLE: the statement did nothing."""
DEADLOCK = 1213
"""ER_LOCK_DEADLOCK: InnoDB rolled the statement back; it had no effect and may run again."""
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Result:
    rowcount: int
    """Affected rows of the first statement."""
    lastrowid: int
    """``LAST_INSERT_ID(expr)`` of the first statement, from its OK packet."""
    rows: tuple[tuple[Any, ...], ...]
    """Rows of the last result set."""


NOTHING = Result(0, 0, ())
"""What a statement on a missing table found: no rows, nothing changed."""


def error_code(e: BaseException) -> int | None:
    """The server's error number of a driver error (both drivers put it in ``args[0]``)."""
    args = getattr(e, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


class Sql:
    """The statements for one table, built once."""

    def __init__(self, table: str) -> None:
        t = f"`{table}`"
        self.table = table
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
        # Looking first avoids the server's "already exists" note, which a driver would
        # fetch with an extra SHOW WARNINGS and log.
        self.table_exists = (
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = %(table)s"
        )
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
        self._updates = {
            (fenced, versioned): self._update(t, fenced, versioned)
            for fenced in (False, True)
            for versioned in (False, True)
        }

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
