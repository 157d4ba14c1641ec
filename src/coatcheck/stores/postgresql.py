"""``postgresql://user@host/db?table=...``: sessions in a PostgreSQL table (psycopg 3).

PHP's equivalent is a PDO session handler on PostgreSQL with ``LOCK_TRANSACTIONAL``; here
locks are leases kept in the row (``lock_token``, ``lock_until``), so a crashed holder loses
the lock when its lease runs out, whichever pooled connection it used. Every operation is
one SQL statement (a failed write asks one more question, to say why it failed).

Clocks: idle deadlines (``expires_at``) come from the app's clock, as the engine computes
them; leases (``lock_until``) are taken and checked with the database's clock, in the same
statements, so app servers whose clocks drift cannot steal each other's locks.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import select
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from ..errors import ConfigError, LockLost, StoreUnavailable, VersionMismatch
from . import url_options
from .base import (
    LOCKED,
    MUST_CREATE,
    MUST_EXIST,
    AsyncStore,
    LockRequest,
    Meta,
    ReadResult,
    Store,
    Stored,
)

# Leaves room for the "_expires" index suffix within PostgreSQL's 63-byte names.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,54}")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
_GC_BATCH = 1000
_SCAN_PAGE = 1000
_DB_NOW = "date_part('epoch', now())"  # one value per statement: leases use the DB clock
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext(%s))"
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Settings:
    """What a ``postgresql://`` URL says, split into coatcheck's options and libpq's."""

    conninfo: str = field(repr=False)  # may hold the password
    table: str = "coatcheck_sessions"
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 5.0
    timeout: float = 5.0
    secrets: tuple[str, ...] = field(default=(), repr=False)  # scrubbed from error messages

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "connect_timeout": max(1, math.ceil(self.connect_timeout))}


def parse_url(url: str) -> Settings:
    """Split ``url`` into coatcheck options and the conninfo handed to psycopg."""
    parts = urlsplit(url)
    opts = url_options(parts.query)
    table = opts.pop("table", "coatcheck_sessions")
    if not _IDENT.fullmatch(table):
        raise ConfigError("postgresql table must be a plain identifier of at most 55 characters")
    try:
        pool_min = int(opts.pop("pool_min", "1"))
        pool_max = int(opts.pop("pool_max", "10"))
        connect_timeout = float(opts.pop("connect_timeout", "5"))
        timeout = float(opts.pop("timeout", "5"))
    except ValueError as e:
        raise ConfigError("postgresql pool_min/pool_max must be integers, timeouts numbers") from e
    if pool_min < 0 or pool_max < max(1, pool_min):
        raise ConfigError("postgresql store needs 0 <= pool_min <= pool_max and pool_max >= 1")
    if not connect_timeout > 0 or not timeout >= 0:
        raise ConfigError("postgresql connect_timeout must be > 0 and timeout >= 0 (0: none)")
    if timeout:  # the statement timeout travels with the connection, no extra round trip
        extra = f"-c statement_timeout={math.ceil(timeout * 1000)}"
        opts["options"] = f"{opts.get('options', '')} {extra}".strip()
    opts.setdefault("application_name", "coatcheck")
    query = urlencode(opts, quote_via=quote)
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))
    found = [unquote(parts.password or ""), opts.get("password", "")]
    return Settings(
        conninfo, table, pool_min, pool_max, connect_timeout, timeout, tuple(s for s in found if s)
    )


def _key(key: str) -> bytes:
    """Storage keys are SHA-256 hex digests; the table keeps their 32 raw bytes."""
    if not _HEX_KEY.fullmatch(key):
        raise ValueError("postgresql store keys must be 64 hex characters (a storage key)")
    return bytes.fromhex(key)


class Statements:
    """Every statement, rendered once per table, and what their results mean."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.index = f"{table}_expires"
        t = sql.Identifier(table).as_string()
        self.regclass = (t, sql.Identifier(self.index).as_string())
        self.schema = [
            f"CREATE TABLE IF NOT EXISTS {t} (key bytea PRIMARY KEY CHECK (octet_length(key) = 32),"
            " payload bytea NOT NULL, expires_at double precision NOT NULL,"
            " version bigint NOT NULL, lock_token text,"
            " lock_until double precision NOT NULL DEFAULT 0) WITH (fillfactor = 80)",
            f"CREATE INDEX IF NOT EXISTS {self.regclass[1]} ON {t} (expires_at)",
        ]
        self.exists = "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL"
        self.select = f"SELECT payload, expires_at, version FROM {t} WHERE key = %b"
        # Take the lease if it is free (or ours) on a live row; otherwise report the row
        # without its payload (LOCKED), or with it when expired (the engine discards it).
        self.lock = (
            f"WITH took AS (UPDATE {t} SET lock_token = %(tok)b,"
            f" lock_until = {_DB_NOW} + %(lease)b WHERE key = %(key)b AND expires_at > %(now)b"
            f" AND (lock_token IS NULL OR lock_token = %(tok)b OR lock_until <= {_DB_NOW})"
            " RETURNING payload, expires_at, version)"
            " SELECT payload, expires_at, version, true FROM took UNION ALL"
            " SELECT CASE WHEN expires_at <= %(now)b THEN payload END, expires_at, version,"
            f" false FROM {t} WHERE key = %(key)b AND NOT EXISTS (SELECT FROM took)"
        )
        self.upsert = (
            f"INSERT INTO {t} AS s (key, payload, expires_at, version)"
            " VALUES (%(key)b, %(payload)b, %(exp)b, 1) ON CONFLICT (key) DO UPDATE SET"
            " payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at,"
            " version = s.version + 1 RETURNING version"
        )
        self.create = (
            f"INSERT INTO {t} (key, payload, expires_at, version)"
            " VALUES (%(key)b, %(payload)b, %(exp)b, 1) ON CONFLICT (key) DO NOTHING"
            " RETURNING version"
        )
        self.update = {
            (fenced, versioned): self._update(t, fenced, versioned)
            for fenced in (False, True)
            for versioned in (False, True)
        }
        self.why = (
            f"SELECT version, lock_token IS NOT DISTINCT FROM %(tok)b"
            f" AND lock_until > {_DB_NOW} FROM {t} WHERE key = %(key)b"
        )
        self.touch = (
            f"UPDATE {t} SET expires_at = GREATEST(expires_at, %(exp)b),"
            " lock_token = CASE WHEN lock_token = %(tok)b THEN NULL ELSE lock_token END,"
            " lock_until = CASE WHEN lock_token = %(tok)b THEN 0 ELSE lock_until END"
            " WHERE key = %(key)b"
        )
        self.release = (
            f"UPDATE {t} SET lock_token = NULL, lock_until = 0"
            " WHERE key = %(key)b AND lock_token = %(tok)b"
        )
        self.destroy = f"DELETE FROM {t} WHERE key = %b"
        self.gc = (
            f"DELETE FROM {t} WHERE key IN (SELECT key FROM {t} WHERE expires_at <= %(now)b"
            f" ORDER BY expires_at LIMIT {_GC_BATCH} FOR UPDATE SKIP LOCKED)"
            " AND expires_at <= %(now)b"
        )
        self.validate = f"SELECT 1 FROM {t} WHERE key = %b AND expires_at > %b"
        self.count = f"SELECT count(*) FROM {t} WHERE expires_at > %b"
        self.scan = (
            f"SELECT key, expires_at, octet_length(payload), lock_token IS NOT NULL"
            f" AND lock_until > {_DB_NOW} FROM {t} WHERE key > %(after)b AND expires_at > %(now)b"
            f" ORDER BY key LIMIT {_SCAN_PAGE}"
        )

        self.rowcount_only = {self.touch, self.release, self.destroy, self.gc}

    @staticmethod
    def _update(t: str, fenced: bool, versioned: bool) -> str:
        """A write to an existing row: fencing and version check in its WHERE clause."""
        lock = "lock_token = NULL, lock_until = 0" if fenced else "lock_token = lock_token"
        where = " AND lock_token = %(tok)b AND lock_until > " + _DB_NOW if fenced else ""
        where += " AND version = %(ver)b" if versioned else ""
        return (
            f"UPDATE {t} SET payload = %(payload)b, expires_at = %(exp)b,"
            f" version = version + 1, {lock} WHERE key = %(key)b{where} RETURNING version"
        )

    # --- read ---------------------------------------------------------------------------

    def read_query(self, key: str, lock: LockRequest | None) -> tuple[str, Any]:
        if lock is None:
            return self.select, (_key(key),)
        params = {
            "key": _key(key),
            "tok": lock.token,
            "lease": float(lock.lease),
            "now": time.time(),
        }
        return self.lock, params

    @staticmethod
    def read_result(rows: Rows) -> ReadResult:
        if not rows:
            return None
        payload, expires_at, version, *_ = rows[0]
        if payload is None:  # live, and another token's lease holds it
            return LOCKED
        return Stored(payload, expires_at, version)

    # --- write --------------------------------------------------------------------------

    def write_query(
        self, key: str, payload: bytes, expires_at: float, expect: int | None, token: str | None
    ) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"key": _key(key), "payload": payload, "exp": float(expires_at)}
        if token is None and expect is None:
            return self.upsert, params
        if token is None and expect == MUST_CREATE:
            return self.create, params
        versioned = expect is not None and expect != MUST_EXIST
        if versioned:  # MUST_CREATE with a token can never hold: version 0 never matches
            params["ver"] = int(expect or 0)
        if token is not None:
            params["tok"] = token
        return self.update[(token is not None, versioned)], params

    def why_query(self, key: str, token: str | None) -> tuple[str, dict[str, Any]]:
        return self.why, {"key": _key(key), "tok": token}

    @staticmethod
    def write_error(rows: Rows, token: str | None) -> Exception:
        """Why a write changed nothing, in the order the contract checks it."""
        if token is not None and (not rows or not rows[0][1]):
            return LockLost(
                "the session lock's lease expired before the write; nothing was written"
            )
        return VersionMismatch("the session changed since it was read")

    # --- the rest -----------------------------------------------------------------------

    def touch_query(
        self, key: str, expires_at: float, token: str | None
    ) -> tuple[str, dict[str, Any]]:
        return self.touch, {"key": _key(key), "exp": float(expires_at), "tok": token}

    def release_query(self, key: str, token: str) -> tuple[str, dict[str, Any]]:
        return self.release, {"key": _key(key), "tok": token}

    @staticmethod
    def meta(row: tuple[Any, ...]) -> Meta:
        key, expires_at, size, locked = row
        return Meta(bytes(key).hex(), expires_at, size, bool(locked))


# --- connections and errors -------------------------------------------------------------


def _unavailable(settings: Settings, e: BaseException, doing: str) -> StoreUnavailable:
    """A StoreUnavailable whose message names the failure, never a credential or a key."""
    if isinstance(e, PoolTimeout):
        why = f"no connection within {settings.connect_timeout:g}s (server down or pool exhausted)"
    elif isinstance(e, psycopg.errors.QueryCanceled):
        why = f"statement timeout ({settings.timeout:g}s)"
    else:
        diag = getattr(e, "diag", None)
        why = (getattr(diag, "message_primary", None) or str(e)).strip().splitlines()[0]
    for secret in settings.secrets:
        why = why.replace(secret, "***")
    return StoreUnavailable(f"postgresql store: {doing} failed: {type(e).__name__}: {why}")


def _connection_lost(e: psycopg.Error) -> bool:
    """The server went away (terminated backend, broken socket), not a slow query."""
    if isinstance(e, PoolTimeout):
        return False
    state = e.sqlstate
    return state is None or state.startswith(("08", "57P"))


def _pending_input(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection has unread input: usually a terminated backend's goodbye.

    A zero-timeout poll costs no round trip, so every connection taken from the pool is
    screened; only a suspicious one is checked with a real query.
    """
    try:
        fd = conn.fileno()
    except psycopg.Error:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def _pool_args(s: Settings) -> dict[str, Any]:
    return {
        "kwargs": s.connect_kwargs,
        "min_size": s.pool_min,
        "max_size": s.pool_max,
        "timeout": s.connect_timeout,
        "name": "coatcheck",
        "open": False,
    }


def drop_namespace(url: str) -> None:
    """Drop the URL's table (tests and ``coatcheck`` cleanup)."""
    s = parse_url(url)
    t = sql.Identifier(s.table).as_string()
    try:
        with psycopg.connect(s.conninfo, **s.connect_kwargs) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {t}")
    except psycopg.Error as e:
        raise _unavailable(s, e, "drop table") from e


# --- the sync store ---------------------------------------------------------------------


class PostgreSQLStore(Store):
    """Sessions in a PostgreSQL table, through a psycopg connection pool."""

    scheme = "postgresql"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.q = Statements(settings.table)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pid = 0
        self._schema_ready = False
        self._lock = threading.Lock()

    def create_schema(self) -> None:
        """Create the table and its expiry index; safe to run again, and concurrently."""
        self._ddl(create=True)

    def _ddl(self, *, create: bool) -> None:
        s = self.settings
        try:
            with psycopg.connect(s.conninfo, **{**s.connect_kwargs, "autocommit": False}) as c:
                # When the table is there, this needs no CREATE privilege.
                if create or c.execute(self.q.exists, self.q.regclass).fetchone() != (True,):
                    # Two stores starting together would race on the catalog: serialize.
                    c.execute(_SCHEMA_LOCK, ("coatcheck.schema",))
                    for statement in self.q.schema:
                        c.execute(statement)
        except psycopg.Error as e:
            raise _unavailable(s, e, "create schema") from e
        self._schema_ready = True

    def _ready(self) -> ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is None or self._pid != os.getpid():  # new, or inherited by a fork
                if not self._schema_ready:
                    self._ddl(create=False)
                pool = ConnectionPool(self.settings.conninfo, **_pool_args(self.settings))
                try:
                    pool.open(wait=True, timeout=self.settings.connect_timeout)
                except psycopg.Error as e:
                    pool.close()  # or its workers would go on reconnecting
                    raise _unavailable(self.settings, e, "connect") from e
                self._pool, self._pid = pool, os.getpid()
            return self._pool

    def _run(self, query: str, params: Any, *, retry: bool, doing: str) -> tuple[Rows, int]:
        """One statement on a pooled connection; rows and rowcount.

        ``retry``: run it once more after a lost connection. Only for statements that
        mean the same thing twice (reads, compare-and-delete, deadline moves); a write
        that may have committed before its connection broke is never repeated.
        """
        for attempt in (0, 1):
            try:
                pool = self._ready()
                conn = self._connection(pool)
                try:
                    cur = conn.execute(query, params, binary=True)
                    rows = [] if query in self.q.rowcount_only else cur.fetchall()
                    return rows, cur.rowcount
                finally:
                    pool.putconn(conn)  # a broken one is discarded and replaced by the pool
            except psycopg.Error as e:
                if attempt or not retry or not _connection_lost(e):
                    raise _unavailable(self.settings, e, doing) from e
        raise AssertionError("unreachable")

    @staticmethod
    def _connection(pool: ConnectionPool[psycopg.Connection[Any]]) -> psycopg.Connection[Any]:
        """A pooled connection, skipping those the server has closed meanwhile.

        The pool's own ``check`` hook backs off a second or more per bad connection; after
        a mass disconnect that would time out, so dead ones are dropped here, at once.
        """
        for _ in range(pool.max_size):
            conn = pool.getconn()
            if not _pending_input(conn):
                return conn
            try:
                ConnectionPool.check_connection(conn)  # a notice, perhaps: still usable?
                return conn
            except psycopg.Error:
                conn.close()
                pool.putconn(conn)
        return pool.getconn()

    def open(self) -> None:
        self._ready()

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        query, params = self.q.read_query(key, lock)
        rows, _ = self._run(query, params, retry=True, doing="read")
        return self.q.read_result(rows)

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        query, params = self.q.write_query(key, payload, expires_at, expect, token)
        rows, _ = self._run(query, params, retry=False, doing="write")
        if rows:
            return int(rows[0][0])
        rows, _ = self._run(*self.q.why_query(key, token), retry=True, doing="write check")
        raise self.q.write_error(rows, token)

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        self._run(*self.q.touch_query(key, expires_at, token), retry=True, doing="touch")

    def release(self, key: str, token: str) -> None:
        self._run(*self.q.release_query(key, token), retry=True, doing="release")

    def destroy(self, key: str) -> None:
        self._run(self.q.destroy, (_key(key),), retry=True, doing="destroy")

    def gc(self) -> int:
        """Delete expired rows in batches by the expiry index (PHP's session.gc)."""
        removed, now = 0, time.time()
        while True:
            _, n = self._run(self.q.gc, {"now": now}, retry=True, doing="gc")
            removed += n
            if n < _GC_BATCH:
                return removed

    def validate_id(self, key: str) -> bool:
        rows, _ = self._run(self.q.validate, (_key(key), time.time()), retry=True, doing="validate")
        return bool(rows)

    def count(self) -> int:
        rows, _ = self._run(self.q.count, (time.time(),), retry=True, doing="count")
        return int(rows[0][0])

    def scan(self) -> Iterator[Meta]:
        after, now = b"", time.time()
        while True:
            params = {"after": after, "now": now}
            rows, _ = self._run(self.q.scan, params, retry=True, doing="scan")
            yield from map(self.q.meta, rows)
            if len(rows) < _SCAN_PAGE:
                return
            after = bytes(rows[-1][0])


# --- the async store --------------------------------------------------------------------


class AsyncPostgreSQLStore(AsyncStore):
    """The asyncio twin of :class:`PostgreSQLStore`: the same statements, awaited."""

    scheme = "postgresql"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.q = Statements(settings.table)
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._schema_ready = False
        self._lock: asyncio.Lock | None = None

    async def create_schema(self) -> None:
        """Create the table and its expiry index; safe to run again, and concurrently."""
        await self._ddl(create=True)

    async def _ddl(self, *, create: bool) -> None:
        s, q = self.settings, self.q
        kwargs = {**s.connect_kwargs, "autocommit": False}
        try:
            async with await psycopg.AsyncConnection.connect(s.conninfo, **kwargs) as c:
                found = await (await c.execute(q.exists, q.regclass)).fetchone()
                if create or found != (True,):
                    await c.execute(_SCHEMA_LOCK, ("coatcheck.schema",))
                    for statement in q.schema:
                        await c.execute(statement)
        except psycopg.Error as e:
            raise _unavailable(s, e, "create schema") from e
        self._schema_ready = True

    async def _ready(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._pool is not None:
            return self._pool
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._pool is None:
                if not self._schema_ready:
                    await self._ddl(create=False)
                pool = AsyncConnectionPool(self.settings.conninfo, **_pool_args(self.settings))
                try:
                    await pool.open(wait=True, timeout=self.settings.connect_timeout)
                except psycopg.Error as e:
                    await pool.close()
                    raise _unavailable(self.settings, e, "connect") from e
                self._pool = pool
            return self._pool

    async def _run(self, query: str, params: Any, *, retry: bool, doing: str) -> tuple[Rows, int]:
        """As :meth:`PostgreSQLStore._run`: one statement, retried only where that is safe."""
        for attempt in (0, 1):
            try:
                pool = await self._ready()
                conn = await self._connection(pool)
                try:
                    cur = await conn.execute(query, params, binary=True)
                    rows = [] if query in self.q.rowcount_only else await cur.fetchall()
                    return rows, cur.rowcount
                finally:
                    await pool.putconn(conn)
            except psycopg.Error as e:
                if attempt or not retry or not _connection_lost(e):
                    raise _unavailable(self.settings, e, doing) from e
        raise AssertionError("unreachable")

    @staticmethod
    async def _connection(
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]],
    ) -> psycopg.AsyncConnection[Any]:
        """As :meth:`PostgreSQLStore._connection`."""
        for _ in range(pool.max_size):
            conn = await pool.getconn()
            if not _pending_input(conn):
                return conn
            try:
                await AsyncConnectionPool.check_connection(conn)
                return conn
            except psycopg.Error:
                await conn.close()
                await pool.putconn(conn)
        return await pool.getconn()

    async def open(self) -> None:
        await self._ready()

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        query, params = self.q.read_query(key, lock)
        rows, _ = await self._run(query, params, retry=True, doing="read")
        return self.q.read_result(rows)

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        query, params = self.q.write_query(key, payload, expires_at, expect, token)
        rows, _ = await self._run(query, params, retry=False, doing="write")
        if rows:
            return int(rows[0][0])
        rows, _ = await self._run(*self.q.why_query(key, token), retry=True, doing="write check")
        raise self.q.write_error(rows, token)

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        await self._run(*self.q.touch_query(key, expires_at, token), retry=True, doing="touch")

    async def release(self, key: str, token: str) -> None:
        await self._run(*self.q.release_query(key, token), retry=True, doing="release")

    async def destroy(self, key: str) -> None:
        await self._run(self.q.destroy, (_key(key),), retry=True, doing="destroy")

    async def gc(self) -> int:
        removed, now = 0, time.time()
        while True:
            _, n = await self._run(self.q.gc, {"now": now}, retry=True, doing="gc")
            removed += n
            if n < _GC_BATCH:
                return removed

    async def validate_id(self, key: str) -> bool:
        params = (_key(key), time.time())
        rows, _ = await self._run(self.q.validate, params, retry=True, doing="validate")
        return bool(rows)

    async def count(self) -> int:
        rows, _ = await self._run(self.q.count, (time.time(),), retry=True, doing="count")
        return int(rows[0][0])

    async def scan(self) -> AsyncIterator[Meta]:
        after, now = b"", time.time()
        while True:
            params = {"after": after, "now": now}
            rows, _ = await self._run(self.q.scan, params, retry=True, doing="scan")
            for row in rows:
                yield self.q.meta(row)
            if len(rows) < _SCAN_PAGE:
                return
            after = bytes(rows[-1][0])


def open_sync(url: str) -> PostgreSQLStore:
    return PostgreSQLStore(parse_url(url))


def open_async(url: str) -> AsyncPostgreSQLStore:
    return AsyncPostgreSQLStore(parse_url(url))
