"""The seeds' DatabaseSessionHandler, in Python: a custom coatcheck store on a DB-API database.

PHP's handler implements open/close/read/write/destroy/gc against a ``sessions`` table. In
coatcheck a store that keeps rows in its own database can subclass ``RowStore`` and supply
only the row access inside a transaction, GC and a listing; the contract's rules (leases,
fencing, versions, expiry) come with it. This one uses the standard library's sqlite3 so it
runs anywhere; swap the connection and the SQL dialect for your database.

Run it: python examples/database_handler.py
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from coatcheck import Config, SessionManager
from coatcheck.stores.base import Meta
from coatcheck.stores.rows import AsyncRowStore, Part, Row, RowAccess, Rows, RowStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,          -- the storage key: a hash of the session id, never the id
    payload BLOB NOT NULL,
    expires_at REAL NOT NULL,     -- absolute idle deadline, indexed for gc()
    version INTEGER NOT NULL,
    lock_token TEXT,
    lock_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires_at);
"""


class _Rows(Rows):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def get(self, key: str) -> Row | None:  # PHP read()
        found = self.db.execute(
            "SELECT payload, expires_at, version, lock_token, lock_until FROM sessions WHERE id=?",
            (key,),
        ).fetchone()
        return None if found is None else Row(bytes(found[0]), *found[1:])

    def put(self, key: str, row: Row, part: Part) -> None:  # PHP write() (an upsert)
        self.db.execute(
            "INSERT INTO sessions (id, payload, expires_at, version, lock_token, lock_until)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET payload=excluded.payload,"
            " expires_at=excluded.expires_at, version=excluded.version,"
            " lock_token=excluded.lock_token, lock_until=excluded.lock_until",
            (key, row.payload, row.expires_at, row.version, row.token, row.lock_until),
        )

    def delete(self, key: str) -> None:  # PHP destroy()
        self.db.execute("DELETE FROM sessions WHERE id=?", (key,))


class SessionTable(RowAccess):
    """The handler's row access, written once: plain blocking code on one connection."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.executescript(SCHEMA)
        self.mutex = threading.Lock()  # one connection shared by this process's threads

    @contextmanager
    def transaction(self, *, create: bool = False) -> Iterator[Rows]:
        with self.mutex:
            self.db.execute("BEGIN IMMEDIATE")  # the database serializes other processes
            try:
                yield _Rows(self.db)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def delete_expired(self, now: float) -> int:  # PHP gc()
        with self.mutex:
            return self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount

    def metas(self, now: float) -> list[Meta]:
        with self.mutex:
            rows = self.db.execute(
                "SELECT id, expires_at, length(payload), lock_token IS NOT NULL AND lock_until > ?"
                " FROM sessions WHERE expires_at > ?",
                (now, now),
            ).fetchall()
        return [Meta(key, expires_at, size, bool(locked)) for key, expires_at, size, locked in rows]

    def teardown(self) -> None:  # PHP close(): RowStore.close() calls it
        self.db.close()


class DatabaseSessionHandler(SessionTable, RowStore):
    """The sync store."""


class AsyncDatabaseSessionHandler(SessionTable, AsyncRowStore):
    """The asyncio store: the same code, each call run in a worker thread."""


def main() -> None:
    sessions = SessionManager(DatabaseSessionHandler("example-sessions.db"), Config())
    with sessions.start() as session:  # session_start()
        session["user_id"] = 42
        session["role"] = "admin"
    print(f"Stored session for user {session['user_id']} in the database.")
    with sessions.start(session.id) as again:
        print(f"Read back: {dict(again)}; live sessions: {sessions.store.count()}")
    print(f"gc removed {sessions.store.gc()} expired row(s) at {time.ctime()}")


if __name__ == "__main__":
    main()
