"""The PostgreSQL store's release notices: LISTEN on one connection per store and process.

A waiter announces itself (:attr:`Notices.announce`): on a row whose lease is held, it sets
``lock_waiting`` and reads the lease's end, in one statement. A trigger then does the rest:
when a row that is waited for loses its lock (its token changes or its lease is cut short:
write, touch, release, a takeover) or is deleted, it calls ``pg_notify`` with the storage key
on the table's channel and clears the flag. A row nobody waits for never reaches the trigger's
function (its ``WHEN`` clause is false), so no release pays for a notification nobody hears,
nor for the commit-time lock every notifying transaction takes. The releasing statements
themselves are untouched.

The column, function and trigger are part of the schema (:attr:`Notices.schema`, run by
``create_schema()`` and ``coatcheck init``, which also add them to a table created before
them). On a table without them the announcement fails, and the store's waiters poll, as
with ``notify=false``, asking again every :data:`NO_COLUMN_RETRY` seconds.

:class:`Feed` (sync, psycopg) and :class:`AsyncFeed` (asyncio) hold the LISTEN connection,
outside the pool, and hand the keys to :mod:`coatcheck.stores._handover`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg

from ._statements import Settings

FUNCTION = "coatcheck_wake"
NO_COLUMN_RETRY = 60.0
"""Seconds a store polls after finding its table without ``lock_waiting``, before it asks again
(so a ``coatcheck init`` run meanwhile turns hand-over on without a restart)."""


class Notices:
    """The SQL of lock hand-over for one table."""

    def __init__(self, table: str) -> None:
        t = f'"{table}"'
        # The channel doubles as the trigger's name: 55 + 5 characters fit in 63.
        self.channel = f"{table}_wake"
        self.listen = f'LISTEN "{self.channel}"'
        self.schema = [
            f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS lock_waiting boolean NOT NULL DEFAULT false",
            f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN"
            " IF TG_OP = 'DELETE' THEN"
            "  PERFORM pg_notify(TG_ARGV[0], encode(OLD.key, 'hex'));"
            "  RETURN OLD;"
            " END IF;"
            " IF NEW.lock_token IS DISTINCT FROM OLD.lock_token"
            "  OR NEW.lock_until < OLD.lock_until THEN"
            "  PERFORM pg_notify(TG_ARGV[0], encode(NEW.key, 'hex'));"
            "  NEW.lock_waiting := false;"
            " END IF;"
            " RETURN NEW;"
            " END $$",
            f'DROP TRIGGER IF EXISTS "{self.channel}" ON {t}',
            f'CREATE TRIGGER "{self.channel}" BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW'
            f" WHEN (OLD.lock_waiting) EXECUTE FUNCTION {FUNCTION}('{self.channel}')",
        ]
        # Held: flag it and return the lease's end (app clock). Free: no row, read again.
        self.announce = (
            f"UPDATE {t} SET lock_waiting = true WHERE key = %(key)b"
            " AND lock_token IS NOT NULL AND lock_until > %(now)b RETURNING lock_until"
        )

    @staticmethod
    def lease_left(rows: list[tuple[Any, ...]], now: float) -> float | None:
        """Seconds left on the lease the announcement flagged; None when the lock is free."""
        if not rows:
            return None
        return float(rows[0][0]) - now


def missing_schema(error: BaseException) -> bool:
    """Whether an announcement failed for want of the column (a table from before it)."""
    return isinstance(error.__cause__, psycopg.errors.UndefinedColumn)


class Feed:
    """The sync LISTEN connection; :meth:`open` connects it."""

    def __init__(self, settings: Settings, notices: Notices) -> None:
        self._settings = settings
        self._notices = notices
        self._conn: psycopg.Connection[Any] | None = None

    def open(self) -> Feed:
        s = self._settings
        self._conn = psycopg.Connection.connect(s.conninfo, **s.connect_kwargs)
        try:
            self._conn.execute(self._notices.listen)  # autocommit: listening from now on
        except BaseException:
            self._conn.close()
            raise
        return self

    def receive(self, timeout: float) -> Iterator[str | None]:
        assert self._conn is not None
        for notice in self._conn.notifies(timeout=timeout):
            if notice.channel == self._notices.channel:
                yield notice.payload

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class AsyncFeed:
    """The asyncio LISTEN connection; :meth:`open` connects it."""

    def __init__(self, settings: Settings, notices: Notices) -> None:
        self._settings = settings
        self._notices = notices
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def open(self) -> AsyncFeed:
        s = self._settings
        self._conn = await psycopg.AsyncConnection.connect(s.conninfo, **s.connect_kwargs)
        try:
            await self._conn.execute(self._notices.listen)
        except BaseException:
            await self._conn.close()
            raise
        return self

    async def receive(self, timeout: float) -> AsyncIterator[str | None]:
        assert self._conn is not None
        async for notice in self._conn.notifies(timeout=timeout):
            if notice.channel == self._notices.channel:
                yield notice.payload

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
