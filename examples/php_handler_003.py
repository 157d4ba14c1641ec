"""Seed 003's PHP "Session Management Class" for MySQL, ported method by method.

The seed registers a class's methods with session_set_save_handler() and keeps sessions in
a ``session`` table on a connection the application opened. Its properties are kept:
``db_link`` (that connection), ``db_name``, ``ttl`` and ``database_ttl`` (minutes), and so
are its ``is_expired()`` and ``unexpire()``, as methods of the handler taking the id.

What coatcheck does instead of the seed, and why:

- ``hash_text``, the ``Hash`` column and ``is_bad_hash()``: coatcheck binds each session to
  a keyed hash of the client (``Config.fingerprint``) and flags a mismatch as
  ``session.is_bad_hash``; ``is_new()`` is ``session.is_new``.
- ``SessionId`` is ``CHAR(64)``: coatcheck passes the SHA-256 of the session id, never the
  id itself, so the table hands out no live session.
- ``ttl`` is the seed's own expiry, kept as the handler's: coatcheck enforces its own idle
  and absolute timeouts on every read, whatever this says. A session past ``ttl`` is still
  read (as in the seed, where the page decides), ``is_expired(id)`` says so, and its expiry
  time is not moved until ``unexpire(id)``.

Not in the seed, and marked so: a table name of one's own, ``lock()``/``unlock()`` with
GET_LOCK/RELEASE_LOCK, ``ids()``, and an ``Expires`` column (the seed's schema shows none,
but its ttl and unexpire need one).

Run it: python examples/php_handler_003.py   (MariaDB or MySQL on 127.0.0.1:3306, db test)
"""

from __future__ import annotations

import re
from typing import Any

import pymysql

from coatcheck import Client, Config, SessionManager
from coatcheck.handlers import AsyncHandlerStore, HandlerStore, SessionHandler
from coatcheck.ids import storage_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS `{table}` (
    SessionId CHAR(64) CHARACTER SET ascii COLLATE ascii_bin PRIMARY KEY,
    Data MEDIUMBLOB,
    Expires DATETIME NULL,
    INDEX (Expires)
)
"""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class MySqlSessionHandler(SessionHandler):
    """The seed's session management class, as a coatcheck handler."""

    def __init__(
        self,
        db_link: pymysql.connections.Connection,
        *,
        db_name: str | None = None,
        ttl: int = 0,
        database_ttl: int = 0,
        table: str = "session",
    ) -> None:
        self.db_link = db_link  # the pre-established connection the handler uses
        self.db_link.autocommit(True)
        self.db_name = db_name  # None: the connection's current database
        self.ttl = ttl  # minutes between requests before a session expires; 0: never
        self.database_ttl = database_ttl  # minutes an expired session stays; 0: forever
        if not _NAME.fullmatch(table) or (db_name is not None and not _NAME.fullmatch(db_name)):
            raise ValueError("table and db_name must be plain SQL names")
        self.table = table  # not in the seed: its table is always `session`

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> tuple[int, list[Any]]:
        with self.db_link.cursor() as cur:
            count = cur.execute(sql.format(table=self.table), args)
            return int(count), list(cur.fetchall())

    # --- the save handler ------------------------------------------------------------------

    def open(self, save_path: str, name: str) -> bool:
        if self.db_name is not None:  # use the database with this name, if set
            self.db_link.select_db(self.db_name)
        return True

    def close(self) -> bool:
        return True

    def read(self, id: str) -> str:
        _, rows = self._query("SELECT Data FROM `{table}` WHERE SessionId = %s", (id,))
        if not rows or rows[0][0] is None:
            return ""
        return bytes(rows[0][0]).decode("utf-8")

    def write(self, id: str, data: str) -> bool:
        # The expiry moves with each write, except for a session that has already expired:
        # that one keeps its expiry time until unexpire().
        self._query(
            "INSERT INTO `{table}` (SessionId, Data, Expires)"
            " VALUES (%s, %s, IF(%s > 0, NOW() + INTERVAL %s MINUTE, NULL))"
            " ON DUPLICATE KEY UPDATE Data = VALUES(Data),"
            " Expires = IF(Expires IS NOT NULL AND Expires < NOW(), Expires, VALUES(Expires))",
            (id, data.encode("utf-8"), self.ttl, self.ttl),
        )
        return True

    def destroy(self, id: str) -> bool:
        self._query("DELETE FROM `{table}` WHERE SessionId = %s", (id,))
        return True

    def gc(self, max_lifetime: int) -> int:
        if self.database_ttl <= 0:  # 0: expired sessions are never deleted
            return 0
        removed, _ = self._query(
            "DELETE FROM `{table}` WHERE Expires < NOW() - INTERVAL %s MINUTE",
            (self.database_ttl,),
        )
        return removed

    # --- the seed's public methods, taking the id --------------------------------------------

    def is_expired(self, id: str) -> bool:
        """True if the session has expired (more than ``ttl`` minutes since it was written)."""
        _, rows = self._query(
            "SELECT Expires IS NOT NULL AND Expires < NOW() FROM `{table}` WHERE SessionId = %s",
            (id,),
        )
        return bool(rows and rows[0][0])

    def unexpire(self, id: str) -> bool:
        """Move the expiry time forward again: resets an expired session."""
        self._query(
            "UPDATE `{table}` SET Expires = IF(%s > 0, NOW() + INTERVAL %s MINUTE, NULL)"
            " WHERE SessionId = %s",
            (self.ttl, self.ttl, id),
        )
        return True

    # --- not in the seed -------------------------------------------------------------------

    def lock(self, id: str, timeout: float) -> bool:
        _, rows = self._query("SELECT GET_LOCK(%s, %s)", (id, timeout))
        return bool(rows) and rows[0][0] == 1

    def unlock(self, id: str) -> bool:
        _, rows = self._query("SELECT RELEASE_LOCK(%s)", (id,))
        return bool(rows) and rows[0][0] == 1

    def ids(self) -> list[str]:
        _, rows = self._query("SELECT SessionId FROM `{table}`")
        return [row[0] for row in rows]


# --- wiring it up ---------------------------------------------------------------------


def connect(**settings: Any) -> pymysql.connections.Connection:
    """The application's connection (the seed's mysql_connect()); one per handler."""
    args: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}
    return pymysql.connect(**{**args, **settings})


def create_table(table: str = "session", **settings: Any) -> None:
    if not _NAME.fullmatch(table):
        raise ValueError("table must be a plain SQL name")
    conn = connect(**settings)
    try:
        with conn.cursor() as cur:
            cur.execute(SCHEMA.format(table=table))
    finally:
        conn.close()


def drop_table(table: str = "session", **settings: Any) -> None:
    if not _NAME.fullmatch(table):
        raise ValueError("table must be a plain SQL name")
    conn = connect(**settings)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    finally:
        conn.close()


def store(table: str = "session", ttl: int = 0, **settings: Any) -> HandlerStore:
    return HandlerStore(lambda: MySqlSessionHandler(connect(**settings), ttl=ttl, table=table))


def async_store(table: str = "session", ttl: int = 0, **settings: Any) -> AsyncHandlerStore:
    return AsyncHandlerStore(lambda: MySqlSessionHandler(connect(**settings), ttl=ttl, table=table))


def main(table: str = "session", **settings: Any) -> None:
    create_table(table, **settings)
    sessions = SessionManager(store(table, ttl=2, **settings), Config(cookie_secure=True))
    browser = Client(user_agent="Firefox")
    with sessions.start(client=browser) as session:
        if session.is_new:  # the seed's is_new()
            print("This is a new session.")
        session["colour"] = "blue"
    handler = MySqlSessionHandler(connect(**settings), ttl=2, table=table)
    key = storage_key(session.id)  # what the handler files the session under
    print(f"Session has expired: {handler.is_expired(key)}")
    with sessions.start(session.id, client=Client(user_agent="curl")) as other:
        if other.is_bad_hash:  # the seed's is_bad_hash()
            print("Bad session hash.")
    handler.db_link.close()


if __name__ == "__main__":
    main()
