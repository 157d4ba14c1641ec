"""``sqlite:///sessions.db``: the embedded default. One file, many processes, one machine.

URLs follow SQLAlchemy's convention: after ``sqlite://`` comes one slash, then the path, so
``sqlite:///sessions.db`` is ``sessions.db`` in the working directory and
``sqlite:////var/lib/app/sessions.db`` (four slashes) is absolute. Options: ``table``
(default ``coatcheck_sessions``) and ``timeout`` (seconds to wait for another writer,
default 5).

WAL mode lets readers run beside the writer. Locks are leases in the row, so a killed
holder's lease runs out. Each operation is one statement in autocommit mode, which is its
own transaction: read + lock is one ``UPDATE ... RETURNING`` that takes the lease only if it
is free and returns the row; the write is one ``UPDATE`` fenced by the token and the lease
(``WHERE lock_token=? AND lock_until>?``) that also ends the lease. Only when such a
statement matches no row (locked, lease lost, version changed, expired) does the store run
the careful path: a ``BEGIN IMMEDIATE`` transaction of :class:`~._rows.RowAccess` that
decides what to answer or raise. SQLite before 3.35 has no ``RETURNING``; there every read
with a lock and every write takes that path.

A released lease keeps its token and gets a ``lock_until`` in the past that is not a whole
number (:data:`_FREE`), so the row keeps its size: SQLite then rewrites a row in place,
touching only the pages whose bytes changed, where a row that grows or shrinks is deleted
and inserted again with every overflow page of a large session.

The absolute deadline column is indexed for GC. Each thread (and each forked process)
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
from typing import Any
from urllib.parse import unquote, urlsplit

from ..contract import LOCKED, MUST_CREATE, LockRequest, ReadResult, Stored
from ..errors import ConfigError, StoreUnavailable
from ..ids import check_storage_key
from ..locks import Row, backoff, changed
from ._blocking import arun_blocking
from ._gc import GcPace
from ._rows import NO_ROWS, Part, RowAccess, Rows
from ._rows_async import AsyncRowStore
from ._rows_sync import RowStore
from ._url import Options, unavailable
from .base import Meta

SCHEMES: tuple[str, ...] = ("sqlite",)
EXTRA = ""

_COLUMNS = "payload, expires_at, version, lock_token, lock_until"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_MANY = 500
"""Keys per statement in read_many: under 999, the variable limit of SQLite before 3.32."""
_FREE = -0.5
"""``lock_until`` of a released lease: before any clock's now, and stored as an 8-byte REAL
(SQLite stores a whole-number REAL as an integer), so releasing keeps the row's size."""
RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
"""Whether this SQLite has ``RETURNING`` (3.35, March 2021), which the one-statement paths need."""


class Statements:
    """The store's SQL for one table: each is a whole operation, run in autocommit mode."""

    def __init__(self, t: str) -> None:
        self.read = f"SELECT payload, expires_at, version FROM {t} WHERE key=?1"
        self.read_many = f"SELECT key, payload, expires_at, version FROM {t} WHERE key IN"
        self.row = f"SELECT {_COLUMNS} FROM {t} WHERE key=?1"
        # ?1 key, ?2 token, ?3 lock_until, ?4 now: the lease is taken only if free or ours
        self.lock = (
            f"UPDATE {t} SET lock_token=?2, lock_until=?3 WHERE key=?1 AND expires_at > ?4"
            " AND (lock_token IS NULL OR lock_until <= ?4 OR lock_token=?2)"
            " RETURNING payload, expires_at, version"
        )
        # ?1 key, ?2 payload, ?3 expires_at, then for the fenced write ?4 token, ?5 now, and
        # for a version check ?6 (fenced) or ?4 (unfenced) the version read
        new = f"UPDATE {t} SET payload=?2, expires_at=?3, version=version+1"
        fence = " AND lock_token=?4 AND lock_until > ?5"
        self.fenced = f"{new}, lock_until={_FREE!r} WHERE key=?1{fence} RETURNING version"
        self.fenced_version = (
            f"{new}, lock_until={_FREE!r} WHERE key=?1{fence} AND version=?6 RETURNING version"
        )
        self.replace = f"{new} WHERE key=?1 RETURNING version"
        self.replace_version = f"{new} WHERE key=?1 AND version=?4 RETURNING version"
        insert = f"INSERT INTO {t} (key, payload, expires_at, version) VALUES (?1, ?2, ?3, 1)"
        self.create = f"{insert} ON CONFLICT (key) DO NOTHING RETURNING version"
        self.upsert = (  # keeps a lock this writer does not own, as every unfenced write does
            f"{insert} ON CONFLICT (key) DO UPDATE SET payload=?2, expires_at=?3,"
            f" version={t}.version+1 RETURNING version"
        )
        # ?1 key, ?2 expires_at, ?3 token (NULL: keep the lock)
        self.touch = (
            f"UPDATE {t} SET expires_at=max(expires_at, ?2),"
            f" lock_until=CASE WHEN lock_token=?3 THEN {_FREE!r} ELSE lock_until END WHERE key=?1"
        )
        self.release = f"UPDATE {t} SET lock_until={_FREE!r} WHERE key=?1 AND lock_token=?2"
        self.destroy = f"DELETE FROM {t} WHERE key=?1"
        self.live = f"SELECT 1 FROM {t} WHERE key=?1 AND expires_at > ?2"


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
        self.pid = _Process.pid


class _Process:
    """This process's id, read once and again after a fork rather than on every call."""

    pid = os.getpid()

    @classmethod
    def forked(cls) -> None:
        cls.pid = os.getpid()


os.register_at_fork(after_in_child=_Process.forked)


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
        self.sql = Statements(table)
        self.returning = RETURNING
        """One statement per read + lock and per write; False: RowAccess's transactions."""

    def setup(self) -> None:
        with self._errors():
            self._connection(create=False)  # an existing database only: opening creates nothing

    def teardown(self) -> None:
        with self._guard:
            opened = list(self._opened)
            self._opened.clear()
            self._local = threading.local()  # every thread opens a new connection next time
        for each in opened:
            if each.pid == _Process.pid:  # a parent's connections are the parent's to close
                each.conn.close()

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """This thread's connection; None if the file does not exist and not ``create``."""
        local = self._local
        opened: _Opened | None = getattr(local, "opened", None)
        if opened is not None and opened.pid == _Process.pid:
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

    # --- the contract, one statement each; RowAccess's transactions where that cannot say ---

    def _read(self, key: str, lock: LockRequest | None) -> ReadResult:
        if lock is not None and not self.returning:
            return super()._read(key, lock)
        check_storage_key(key)
        if lock is None:
            found = self._run(False, self.sql.read, (key,))
            if not found:
                return None
            payload, expires_at, version = found[0]
            return Stored(payload, expires_at, version)
        now = self.clock()
        taken = self._run(False, self.sql.lock, (key, lock.token, now + lock.lease, now))
        if taken:
            payload, expires_at, version = taken[0]
            return Stored(payload, expires_at, version)
        found = self._run(False, self.sql.row, (key,)) if taken is not None else None
        if not found:
            return None
        row = Row(*found[0])
        if row.expires_at <= now:
            return Stored(row.payload, row.expires_at, row.version)  # the engine discards it
        if row.locked(now) and row.token != lock.token:
            return LOCKED
        return super()._read(key, lock)  # the lease came free since: take it the careful way

    def _read_many(self, keys: list[str]) -> list[Stored | None]:
        """read_many: one ``IN (...)`` query per :data:`_MANY` keys, without locks (admin)."""
        for key in keys:
            check_storage_key(key)
        found: dict[str, Stored] = {}
        for start in range(0, len(keys), _MANY):
            chunk = keys[start : start + _MANY]
            marks = ",".join("?" * len(chunk))
            rows = self._run(False, f"{self.sql.read_many} ({marks})", tuple(chunk))
            if rows is None:  # no database or no table: nothing stored
                break
            for key, payload, expires_at, version in rows:
                found[key] = Stored(payload, expires_at, version)
        return [found.get(key) for key in keys]

    def _write(
        self, key: str, payload: bytes, expires_at: float, expect: int | None, token: str | None
    ) -> int:
        if not self.returning or (token is not None and expect == MUST_CREATE):
            return super()._write(key, payload, expires_at, expect, token)
        check_storage_key(key)
        sql = self.sql
        args: tuple[object, ...] = (key, payload, expires_at)
        if token is not None:
            args += (token, self.clock())
            if expect is not None and expect > 0:
                statement, args = sql.fenced_version, (*args, expect)
            else:  # None or MUST_EXIST: a row holding our lease exists
                statement = sql.fenced
        elif expect is None:
            statement = sql.upsert
        elif expect == MUST_CREATE:
            statement = sql.create
        elif expect > 0:
            statement, args = sql.replace_version, (*args, expect)
        else:
            statement = sql.replace
        written = self._run(True, statement, args)
        if written:
            return int(written[0][0])
        if token is not None:  # lease lost or version changed: the careful path says which
            return super()._write(key, payload, expires_at, expect, token)
        raise changed()

    def _update_timestamp(self, key: str, expires_at: float, token: str | None) -> None:
        self._run(False, self.sql.touch, (check_storage_key(key), expires_at, token))

    def _release(self, key: str, token: str) -> None:
        self._run(False, self.sql.release, (check_storage_key(key), token))

    def _destroy(self, key: str) -> None:
        self._run(False, self.sql.destroy, (check_storage_key(key),))

    def _validate_id(self, key: str) -> bool:
        return bool(self._run(False, self.sql.live, (check_storage_key(key), self.clock())))

    def _run(self, create: bool, statement: str, args: tuple[object, ...]) -> list[Any] | None:
        """Every row of one statement, run in autocommit mode (so, its own transaction).

        None when there is no database or table and not ``create``: nothing is created then.
        Rows are fetched to the end, which is when SQLite commits a changing statement.
        """
        opened: _Opened | None = getattr(self._local, "opened", None)
        try:
            if opened is not None and opened.pid == _Process.pid and self._schema_ready:
                conn = opened.conn
            elif (ready := self._ready(create)) is not None:
                conn = ready
            else:
                return None
            return conn.execute(statement, args).fetchall()
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
        return sum(self.expired_batches(now))

    def expired_batches(self, now: float) -> Iterator[int]:
        """GC batch by batch (see :meth:`_delete_batch`): yields each batch's count."""
        pace = GcPace()
        while True:
            size, started = pace.size, time.perf_counter()
            removed = self._delete_batch(now, size)
            if removed is None:
                return
            pace.done(removed, time.perf_counter() - started)  # the DELETE's time alone
            yield removed
            if removed < size:
                return

    def _delete_batch(self, now: float, size: int) -> int | None:
        """One indexed DELETE of up to ``size`` expired rows, sized by GcPace to take about
        GC_TARGET seconds: the database has one writer, and a request waits for it while a
        batch runs. None when there is no table."""
        t = self.table
        with self._errors():
            conn = self._ready(create=False)
            if conn is None:
                return None
            cur = conn.execute(
                f"DELETE FROM {t} WHERE key IN"
                f" (SELECT key FROM {t} WHERE expires_at <= ? LIMIT {size:d})",
                (now,),
            )
            return int(cur.rowcount)

    def count_expired(self, now: float) -> int:
        """Rows GC would delete now (an index range count)."""
        with self._errors():
            conn = self._ready(create=False)
            if conn is None:
                return 0
            cur = conn.execute(f"SELECT COUNT(*) FROM {self.table} WHERE expires_at <= ?", (now,))
            return int(cur.fetchone()[0])

    def schema_ready(self) -> bool:
        """Whether the database file and the table exist (``coatcheck init`` made them)."""
        with self._errors():
            return self._ready(create=False) is not None

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

    def has_schema(self) -> bool:
        """Whether the table exists; creates nothing."""
        return self.schema_ready()

    def gc_pending(self) -> int:
        """How many expired records :meth:`gc` would delete now."""
        return self.count_expired(self.clock())


class AsyncSQLiteStore(_SQLite, AsyncRowStore):
    """:class:`SQLiteStore` for asyncio: each call runs in a worker thread."""

    async def create_schema(self) -> None:
        """Create the database file and the table now rather than at the first write."""
        await arun_blocking(self, self._create_now)

    async def has_schema(self) -> bool:
        """Whether the table exists; creates nothing."""
        return await arun_blocking(self, self.schema_ready)

    async def gc_pending(self) -> int:
        """How many expired records :meth:`gc` would delete now."""
        return await arun_blocking(self, self.count_expired, self.clock())


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
