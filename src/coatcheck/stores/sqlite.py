"""``sqlite:///sessions.db``: the embedded default. One file, many processes, one machine.

WAL mode lets readers run beside the writer; each operation is one short ``BEGIN
IMMEDIATE`` transaction, so locks are leases in the row and a killed holder's lease runs
out. The absolute deadline column is indexed for GC. Each thread (and each forked
process) gets its own connection.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import ConfigError, StoreUnavailable
from ..locks import Row
from .base import Meta
from .rows import Part, Rows, RowStore

_COLUMNS = "payload, expires_at, version, lock_token, lock_until"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class _SqlRows(Rows):
    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        self.conn = conn
        self.t = table

    def get(self, key: str) -> Row | None:
        cur = self.conn.execute(
            f"SELECT {_COLUMNS} FROM {self.t} WHERE key=?",
            (key,),
        )
        found = cur.fetchone()
        return None if found is None else Row(bytes(found[0]), *found[1:])

    def put(self, key: str, row: Row, part: Part) -> None:
        if part == "lock":
            sql = f"UPDATE {self.t} SET lock_token=?, lock_until=? WHERE key=?"
            self.conn.execute(sql, (row.token, row.lock_until, key))
        elif part == "expiry":
            sql = f"UPDATE {self.t} SET expires_at=?, lock_token=?, lock_until=? WHERE key=?"
            self.conn.execute(sql, (row.expires_at, row.token, row.lock_until, key))
        else:
            self.conn.execute(
                f"INSERT OR REPLACE INTO {self.t} (key, payload, expires_at, version, lock_token,"
                " lock_until) VALUES (?, ?, ?, ?, ?, ?)",
                (key, row.payload, row.expires_at, row.version, row.token, row.lock_until),
            )

    def delete(self, key: str) -> None:
        self.conn.execute(f"DELETE FROM {self.t} WHERE key=?", (key,))


class SQLiteStore(RowStore):
    """Sessions in an SQLite database file."""

    scheme = "sqlite"

    def __init__(
        self, path: str, *, table: str = "coatcheck_sessions", timeout: float = 5.0
    ) -> None:
        if not path:
            raise ConfigError("sqlite store needs a file: sqlite:///sessions.db")
        if not _IDENT.fullmatch(table):
            raise ConfigError("sqlite table must be a plain SQL identifier")
        self.path = path
        self.table = table
        self.timeout = timeout
        self.shared = path != ":memory:"
        self._local = threading.local()
        self._schema_ready = False

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as e:
                raise StoreUnavailable(f"sqlite store: cannot open the database ({e})") from e
            self._local.conn, self._local.pid = conn, os.getpid()
            if not self._schema_ready:
                self._create_schema(conn)
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        t = self.table
        with self._errors():
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY NOT NULL,"
                " payload BLOB NOT NULL, expires_at REAL NOT NULL, version INTEGER NOT NULL,"
                " lock_token TEXT, lock_until REAL NOT NULL DEFAULT 0) WITHOUT ROWID"
            )
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_at)")
        self._schema_ready = True

    def open(self) -> None:
        self._conn()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as e:
            raise StoreUnavailable(f"sqlite store: {e}") from e

    @contextmanager
    def transaction(self) -> Iterator[Rows]:
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqlRows(conn, self.table)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def expired(self, now: float) -> list[str]:
        with self._errors():
            cur = self._conn().execute(
                f"SELECT key FROM {self.table} WHERE expires_at <= ? LIMIT 10000",
                (now,),
            )
            return [k for (k,) in cur.fetchall()]

    def gc(self) -> int:
        """One indexed DELETE per batch instead of a row at a time."""
        removed = 0
        with self._errors():
            while True:
                cur = self._conn().execute(
                    f"DELETE FROM {self.table} WHERE key IN (SELECT key FROM {self.table}"
                    " WHERE expires_at <= ? LIMIT 1000)",
                    (time.time(),),
                )
                removed += cur.rowcount
                if cur.rowcount < 1000:
                    return removed

    def count(self) -> int:
        with self._errors():
            cur = self._conn().execute(
                f"SELECT COUNT(*) FROM {self.table} WHERE expires_at > ?",
                (time.time(),),
            )
            return int(cur.fetchone()[0])

    def metas(self, now: float) -> Iterator[Meta]:
        with self._errors():
            cur = self._conn().execute(
                "SELECT key, expires_at, length(payload), lock_token IS NOT NULL AND lock_until > ?"
                f" FROM {self.table} WHERE expires_at > ?",
                (now, now),
            )
            rows = cur.fetchall()
        for key, expires_at, size, locked in rows:
            yield Meta(key, expires_at, size, bool(locked))
