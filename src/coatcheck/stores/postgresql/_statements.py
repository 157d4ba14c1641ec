"""What the PostgreSQL store says, free of any driver: its URL options and its SQL.

:func:`parse_url` splits a ``postgresql://`` URL into coatcheck's options and the conninfo
handed to psycopg; :class:`Statements` renders every statement once per table and reads
their results. The store modules (``_async.py`` and its generated twin) only run them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from ...contract import LOCKED, MUST_CREATE, MUST_EXIST, LockRequest, Meta, ReadResult, Stored
from ...errors import ConfigError
from ...ids import check_storage_key
from ...locks import changed, lease_lost
from .. import _url

SCAN_PAGE = 1000
SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('coatcheck.schema'))"
NO_FLUSH = "set_config('synchronous_commit', 'off', true) IS NOT NULL"
"""A condition that is always true and, once evaluated, makes the statement's transaction
commit asynchronously (``SET LOCAL synchronous_commit = off`` without a round trip of its
own: every statement here runs alone in an implicit transaction). For statements that only
take or drop a lease (a crash may lose one, which the fencing check makes harmless: the
holder's write is refused) and for GC's deletes of expired rows (a lost one is done again).
The write of a session never uses it: its commit stays durable, and as the WAL is flushed
in order, it also makes every earlier lease change durable."""
Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Settings:
    """What a ``postgresql://`` URL says, split into coatcheck's options and libpq's."""

    conninfo: str = field(repr=False)  # may hold the password
    where: str = "localhost"  # host(s), port(s) and database, for messages
    table: str = "coatcheck_sessions"
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: float = 5.0
    timeout: float = 5.0
    create_schema: bool = True  # the first write or lock creates a missing table
    secrets: tuple[str, ...] = field(default=(), repr=False)  # scrubbed from error messages
    notify: bool = True  # lock hand-over by LISTEN/NOTIFY (false: waiters poll); _listen.py

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "connect_timeout": max(1, math.ceil(self.connect_timeout))}


def parse_url(url: str) -> Settings:
    """Split ``url`` into coatcheck options and the conninfo handed to psycopg."""
    parsed = _url.parse(url, default_port=5432, several_hosts=True)  # libpq takes host lists
    opts = parsed.options
    # 55 characters leave room for the "_expires" index suffix within PostgreSQL's 63.
    table = opts.identifier("table", "coatcheck_sessions", max_len=55)
    pool_min = opts.whole("pool_min", "1", zero=True)
    pool_max = opts.whole("pool_max", "10")
    connect_timeout = opts.number("connect_timeout", "5")
    timeout = opts.number("timeout", "5", zero=True)
    create_schema = opts.flag("create_schema", "true")
    notify = opts.flag("notify", "true")
    if pool_min > pool_max:
        raise ConfigError("postgresql store option pool_min must be <= pool_max")
    libpq = opts.rest()  # the options coatcheck does not know are libpq's
    if timeout:  # the statement timeout travels with the connection, no extra round trip
        extra = f"-c statement_timeout={math.ceil(timeout * 1000)}"
        libpq["options"] = f"{libpq.get('options', '')} {extra}".strip()
    libpq.setdefault("application_name", "coatcheck")
    parts = urlsplit(url)
    query = urlencode(libpq, quote_via=quote)
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))
    where = (parsed.where or libpq.get("host", "localhost")) + parsed.path
    found = (parsed.password, libpq.get("password"))
    secrets = tuple(s for s in found if s)
    return Settings(
        conninfo,
        where,
        table,
        pool_min,
        pool_max,
        connect_timeout,
        timeout,
        create_schema,
        secrets,
        notify=notify,
    )


def key_bytes(key: str) -> bytes:
    """Storage keys are SHA-256 hex digests; the table keeps their 32 raw bytes."""
    return bytes.fromhex(check_storage_key(key))


class Statements:
    """Every statement, rendered once per table, and what their results mean.

    Every statement that takes or checks a lease gets ``now`` from the app's clock, as the
    idle deadlines do: app servers' clocks must agree (NTP), and a test's fake clock can
    expire a lease.
    """

    def __init__(self, table: str) -> None:
        self.table = table
        t = f'"{table}"'  # a plain identifier (checked by parse_url), quoted to keep its case
        self.schema = [
            f"CREATE TABLE IF NOT EXISTS {t} (key bytea PRIMARY KEY CHECK (octet_length(key) = 32),"
            " payload bytea NOT NULL, expires_at double precision NOT NULL,"
            " version bigint NOT NULL, lock_token text,"
            " lock_until double precision NOT NULL DEFAULT 0) WITH (fillfactor = 80)",
            f'CREATE INDEX IF NOT EXISTS "{table}_expires" ON {t} (expires_at)',
        ]
        self.drop = f"DROP TABLE IF EXISTS {t}"
        self.select = f"SELECT payload, expires_at, version FROM {t} WHERE key = %b"
        # read_many (admin): one bytea[] parameter, so one statement whatever the count
        self.select_many = f"SELECT key, payload, expires_at, version FROM {t} WHERE key = ANY(%b)"
        # Take the lease if it is free (or ours) on a live row; otherwise report the row
        # without its payload (LOCKED), or with it when expired (the engine discards it).
        # A lease needs no durable commit: NO_FLUSH turns synchronous_commit off for this
        # statement's own transaction whenever it takes the lease (the last term of an AND
        # that held), so its commit does not wait for the WAL flush; see NO_FLUSH.
        self.lock = (
            f"WITH took AS (UPDATE {t} SET lock_token = %(tok)b,"
            " lock_until = %(now)b + %(lease)b WHERE key = %(key)b AND expires_at > %(now)b"
            " AND (lock_token IS NULL OR lock_token = %(tok)b OR lock_until <= %(now)b)"
            f" AND {NO_FLUSH} RETURNING payload, expires_at, version)"
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
            "SELECT version, lock_token IS NOT DISTINCT FROM %(tok)b"
            f" AND lock_until > %(now)b FROM {t} WHERE key = %(key)b"
        )
        self.touch = (
            f"UPDATE {t} SET expires_at = GREATEST(expires_at, %(exp)b),"
            " lock_token = CASE WHEN lock_token = %(tok)b THEN NULL ELSE lock_token END,"
            " lock_until = CASE WHEN lock_token = %(tok)b THEN 0 ELSE lock_until END"
            " WHERE key = %(key)b"
        )
        self.release = (
            f"UPDATE {t} SET lock_token = NULL, lock_until = 0"
            f" WHERE key = %(key)b AND lock_token = %(tok)b AND {NO_FLUSH}"
        )
        self.destroy = f"DELETE FROM {t} WHERE key = %b"
        # One GC batch: the next expired rows along the expires_at index from where the
        # last batch ended (so no batch walks past the index entries of rows already
        # deleted), skipping rows a request has locked; how many it found and deleted, and
        # the deadline to go on from. Committed without waiting for the WAL flush: a batch
        # a crash loses only deletes rows that stay expired, and the next GC deletes them.
        self.gc = (
            f"WITH picked AS (SELECT key, expires_at FROM {t} WHERE expires_at >= %(after)b"
            " AND expires_at <= %(now)b ORDER BY expires_at LIMIT %(limit)b"
            " FOR UPDATE SKIP LOCKED),"
            f" gone AS (DELETE FROM {t} USING picked WHERE {t}.key = picked.key"
            f" AND {t}.expires_at <= %(now)b AND {NO_FLUSH} RETURNING 1)"
            " SELECT (SELECT count(*) FROM picked), (SELECT count(*) FROM gone),"
            " (SELECT max(expires_at) FROM picked)"
        )
        self.validate = f"SELECT 1 FROM {t} WHERE key = %b AND expires_at > %b"
        self.count = f"SELECT count(*) FROM {t} WHERE expires_at > %b"
        self.count_expired = f"SELECT count(*) FROM {t} WHERE expires_at <= %b"
        self.has_table = "SELECT to_regclass(%b) IS NOT NULL"  # the quoted name, bound
        self.scan = (
            "SELECT key, expires_at, octet_length(payload), lock_token IS NOT NULL"
            f" AND lock_until > %(now)b FROM {t} WHERE key > %(after)b AND expires_at > %(now)b"
            f" ORDER BY key LIMIT {SCAN_PAGE}"
        )

        self.rowcount_only = {self.touch, self.release, self.destroy}

    @staticmethod
    def _update(t: str, fenced: bool, versioned: bool) -> str:
        """A write to an existing row: fencing and version check in its WHERE clause."""
        lock = "lock_token = NULL, lock_until = 0" if fenced else "lock_token = lock_token"
        where = " AND lock_token = %(tok)b AND lock_until > %(now)b" if fenced else ""
        where += " AND version = %(ver)b" if versioned else ""
        return (
            f"UPDATE {t} SET payload = %(payload)b, expires_at = %(exp)b,"
            f" version = version + 1, {lock} WHERE key = %(key)b{where} RETURNING version"
        )

    # --- read ---------------------------------------------------------------------------

    def read_query(self, key: str, lock: LockRequest | None, now: float) -> tuple[str, Any]:
        if lock is None:
            return self.select, (key_bytes(key),)
        lease = {"tok": lock.token, "lease": float(lock.lease), "now": float(now)}
        return self.lock, {"key": key_bytes(key), **lease}

    @staticmethod
    def read_result(rows: Rows) -> ReadResult:
        if not rows:
            return None
        payload, expires_at, version, *_ = rows[0]
        if payload is None:  # live, and another token's lease holds it
            return LOCKED
        return Stored(payload, expires_at, version)

    def read_many_query(self, keys: list[str]) -> tuple[str, Any]:
        return self.select_many, ([key_bytes(key) for key in keys],)

    @staticmethod
    def read_many_result(keys: list[str], rows: Rows) -> list[Stored | None]:
        """The rows in the order of ``keys`` (the server returns them in any order)."""
        found = {bytes(key).hex(): Stored(payload, exp, ver) for key, payload, exp, ver in rows}
        return [found.get(key) for key in keys]

    # --- write --------------------------------------------------------------------------

    def write_query(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        expect: int | None,
        token: str | None,
        now: float,
    ) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {
            "key": key_bytes(key),
            "payload": payload,
            "exp": float(expires_at),
        }
        if token is None and expect is None:
            return self.upsert, params
        if token is None and expect == MUST_CREATE:
            return self.create, params
        versioned = expect is not None and expect != MUST_EXIST
        if versioned:  # MUST_CREATE with a token can never hold: version 0 never matches
            params["ver"] = int(expect or 0)
        if token is not None:
            params["tok"], params["now"] = token, float(now)
        return self.update[(token is not None, versioned)], params

    def why_query(self, key: str, token: str | None, now: float) -> tuple[str, dict[str, Any]]:
        return self.why, {"key": key_bytes(key), "tok": token, "now": float(now)}

    @staticmethod
    def write_error(rows: Rows, token: str | None) -> Exception:
        """Why a write changed nothing, in the order the contract checks it."""
        if token is not None and (not rows or not rows[0][1]):
            return lease_lost()
        return changed()

    # --- the rest -----------------------------------------------------------------------

    def touch_query(
        self, key: str, expires_at: float, token: str | None
    ) -> tuple[str, dict[str, Any]]:
        return self.touch, {"key": key_bytes(key), "exp": float(expires_at), "tok": token}

    def release_query(self, key: str, token: str) -> tuple[str, dict[str, Any]]:
        return self.release, {"key": key_bytes(key), "tok": token}

    def has_table_query(self) -> tuple[str, tuple[str]]:
        return self.has_table, (f'"{self.table}"',)

    @staticmethod
    def meta(row: tuple[Any, ...]) -> Meta:
        key, expires_at, size, locked = row
        return Meta(bytes(key).hex(), expires_at, size, bool(locked))
