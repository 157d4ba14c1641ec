"""``sqlite:///sessions.db``: the embedded default. One file, many processes, one machine.

URLs follow SQLAlchemy's convention: after ``sqlite://`` comes one slash, then the path, so
``sqlite:///sessions.db`` is ``sessions.db`` in the working directory and
``sqlite:////var/lib/app/sessions.db`` (four slashes) is absolute. Options: ``table``
(default ``coatcheck_sessions``) and ``timeout`` (seconds to wait for another writer,
default 5).

WAL mode lets readers run beside the writer; each operation is one short ``BEGIN
IMMEDIATE`` transaction, so locks are leases in the row and a killed holder's lease runs
out. The absolute deadline column is indexed for GC. Each thread (and each forked process)
gets its own connection. Neither the file nor the table is created before the first write
(or :meth:`SQLiteStore.create_schema`): reading a database that is not there finds nothing.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError, StoreUnavailable
from ..locks import Row, backoff
from ._blocking import arun_blocking
from ._rows import NO_ROWS, Part, RowAccess, Rows
from ._rows_async import AsyncRowStore
from ._rows_sync import RowStore
from ._url import Options, unavailable
from .base import Meta

SCHEMES: tuple[str, ...] = ("sqlite",)
EXTRA = ""

_COLUMNS = "payload, expires_at, version, lock_token, lock_until"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_BATCH = 1000  # GC deletes at most this many rows per statement


class _SqlRows(Rows):
    def __init__(self, conn: sqlite3.Connection, table: str) -> None:
        self.conn = conn
        self.t = table

    def get(self, key: str) -> Row | None:
        cur = self.conn.execute(f"SELECT {_COLUMNS} FROM {self.t} WHERE key=?", (key,))
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


class _Opened:
    """A thread's connection. When the thread ends, this is dropped and the connection closes."""

    __slots__ = ("__weakref__", "conn", "pid")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.pid = os.getpid()


class _SQLite(RowAccess):
    """Sessions in an SQLite database file."""

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
        self._opened: weakref.WeakSet[_Opened] = weakref.WeakSet()  # every thread's, for close()
        self._guard = threading.Lock()
        self._schema_ready = False

    def setup(self) -> None:
        with self._errors():
            self._connection(create=False)  # an existing database only: opening creates nothing

    def teardown(self) -> None:
        with self._guard:
            opened = list(self._opened)
            self._opened.clear()
            self._local = threading.local()  # every thread opens a new connection next time
        for each in opened:
            if each.pid == os.getpid():  # a parent's connections are the parent's to close
                each.conn.close()

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """This thread's connection; None if the file does not exist and not ``create``."""
        local = self._local
        opened: _Opened | None = getattr(local, "opened", None)
        if opened is not None and opened.pid == os.getpid():
            return opened.conn
        if not create and self.path != ":memory:" and not os.path.exists(self.path):
            return None
        local.opened = opened = _Opened(self._connect())
        with self._guard:
            self._opened.add(opened)
        return opened.conn

    def _connect(self) -> sqlite3.Connection:
        # connect()'s timeout is SQLite's busy timeout, set before any statement runs. Turning
        # WAL on does not wait for it: while another connection writes in rollback-journal
        # mode SQLite answers "database is locked" at once, so that pragma is retried.
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as e:
            raise self._unavailable(e, "open") from e
        try:
            self._until_not_busy(conn, "PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            conn.close()
            raise self._unavailable(e, "open") from e
        return conn

    def _until_not_busy(self, conn: sqlite3.Connection, sql: str) -> None:
        """``sql``, retried while the database is busy, for up to ``timeout`` seconds."""
        for delay in backoff(0.005, 0.1, self.timeout, time.monotonic):
            try:
                conn.execute(sql)
                return
            except sqlite3.OperationalError as e:
                if e.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
            time.sleep(delay)
        conn.execute(sql)  # the last try: its error is the one to report

    def _unavailable(self, e: BaseException, doing: str) -> StoreUnavailable:
        return unavailable(f"sqlite store at {self.path}", e, doing)

    def _ready(self, create: bool) -> sqlite3.Connection | None:
        """A connection to a database with the table; None if there is none and not ``create``."""
        conn = self._connection(create)
        if conn is None or self._schema_ready:
            return conn
        if create:
            self._create_schema(conn)
        elif conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (self.table,)
        ).fetchone():
            self._schema_ready = True
        else:
            return None
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        t = self.table
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (key TEXT PRIMARY KEY NOT NULL,"
            " payload BLOB NOT NULL, expires_at REAL NOT NULL, version INTEGER NOT NULL,"
            " lock_token TEXT, lock_until REAL NOT NULL DEFAULT 0) WITHOUT ROWID"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_expires ON {t} (expires_at)")
        self._schema_ready = True

    def _create_now(self) -> None:
        with self._errors():
            conn = self._connection(create=True)
            assert conn is not None
            self._create_schema(conn)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as e:
            raise self._unavailable(e, "query") from e

    @contextmanager
    def transaction(self, *, create: bool = False) -> Iterator[Rows]:
        with self._errors():
            conn = self._ready(create)
            if conn is None:
                yield NO_ROWS
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqlRows(conn, self.table)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def delete_expired(self, now: float) -> int:
        """One indexed DELETE per batch instead of a row at a time."""
        removed = 0
        t = self.table
        with self._errors():
            conn = self._ready(create=False)
            while conn is not None:
                cur = conn.execute(
                    f"DELETE FROM {t} WHERE key IN"
                    f" (SELECT key FROM {t} WHERE expires_at <= ? LIMIT {_BATCH})",
                    (now,),
                )
                removed += cur.rowcount
                if cur.rowcount < _BATCH:
                    break
        return removed

    def count_live(self, now: float) -> int:
        with self._errors():
            conn = self._ready(create=False)
            if conn is None:
                return 0
            cur = conn.execute(f"SELECT COUNT(*) FROM {self.table} WHERE expires_at > ?", (now,))
            return int(cur.fetchone()[0])

    def metas(self, now: float) -> list[Meta]:
        with self._errors():
            conn = self._ready(create=False)
            if conn is None:
                return []
            rows = conn.execute(
                "SELECT key, expires_at, length(payload), lock_token IS NOT NULL AND lock_until > ?"
                f" FROM {self.table} WHERE expires_at > ?",
                (now, now),
            ).fetchall()
        return [Meta(key, expires_at, size, bool(locked)) for key, expires_at, size, locked in rows]


class SQLiteStore(_SQLite, RowStore):
    """Sessions in an SQLite database file."""

    def create_schema(self) -> None:
        """Create the database file and the table now rather than at the first write."""
        self._create_now()


class AsyncSQLiteStore(_SQLite, AsyncRowStore):
    """:class:`SQLiteStore` for asyncio: each call runs in a worker thread."""

    async def create_schema(self) -> None:
        """Create the database file and the table now rather than at the first write."""
        await arun_blocking(self, self._create_now)


def _parse(url: str) -> tuple[str, str, float]:
    parts = urlsplit(url)
    if parts.netloc:
        raise ConfigError(
            "a sqlite store URL has no host: sqlite:///relative/path.db (from the working"
            " directory) or sqlite:////absolute/path.db"
        )
    path = unquote(parts.path.removeprefix("/"))
    if path == ":memory:":
        raise ConfigError("sqlite store: use memory:// for sessions kept in memory")
    options = Options("sqlite", parts.query)
    table = options.identifier("table", "coatcheck_sessions")
    timeout = options.number("timeout", "5")
    options.done()
    return path, table, timeout


def open_sync(url: str) -> SQLiteStore:
    path, table, timeout = _parse(url)
    return SQLiteStore(path, table=table, timeout=timeout)


def open_async(url: str) -> AsyncSQLiteStore:
    path, table, timeout = _parse(url)
    return AsyncSQLiteStore(path, table=table, timeout=timeout)
