"""Seed 001's PHP ``DatabaseSessionHandler`` (PDO on MySQL), ported line by line.

The PHP class implements ``SessionHandlerInterface`` on a ``sessions(id, payload,
expires_at)`` table, and the seed adds ``login()``, ``logout()`` and ``isHijacked()``. Here
the class subclasses ``coatcheck.handlers.SessionHandler`` on PyMySQL, with the same
methods and the same SQL, and ``HandlerStore`` makes it a coatcheck store. What the PHP code
does not do, coatcheck does around it: strict mode, a lock per session (the PHP handler
lets two requests overwrite each other), expiry checked on every read, fingerprints.

Not in the seed, and marked so below: a table name of one's own, ``lock()``/``unlock()``
with MariaDB's GET_LOCK/RELEASE_LOCK (what makes coatcheck's locks exact), ``ids()`` (exact
GC and the admin commands), and the table's schema.

The ``id`` coatcheck passes is the SHA-256 of the session id (64 hex characters), never the
id itself, so this table hands out no live session.

Run it: python examples/php_handler_001.py   (MariaDB or MySQL on 127.0.0.1:3306, db test)
"""

from __future__ import annotations

import re
from typing import Any

import pymysql

from coatcheck import Client, Config, Session, SessionManager
from coatcheck.handlers import AsyncHandlerStore, HandlerStore, SessionHandler

SCHEMA = """
CREATE TABLE IF NOT EXISTS `{table}` (
    id CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    payload MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    expires_at DATETIME NOT NULL,
    INDEX (expires_at)
)
"""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class DatabaseSessionHandler(SessionHandler):
    """The seed's handler. A handler is just a class with PHP's methods, which coatcheck
    calls for you at the right moments: you never call them directly."""

    def __init__(self, pdo: pymysql.connections.Connection, table: str = "sessions") -> None:
        self.pdo = pdo
        self.pdo.autocommit(True)  # PDO commits each statement; PyMySQL must be told to
        if not _NAME.fullmatch(table):  # not in the seed: a table name of one's own
            raise ValueError("table must be a plain SQL name")
        self.table = table

    # open(): called when a request first needs its session. Return True if storage is ready.
    def open(self, save_path: str, name: str) -> bool:
        return True

    # close(): called when the request is done with its session. Free resources, return True.
    def close(self) -> bool:
        return True

    # read(): coatcheck asks for the saved data for this session id.
    def read(self, id: str) -> str:
        with self.pdo.cursor() as stmt:
            stmt.execute(
                f"SELECT payload FROM `{self.table}` WHERE id = %s AND expires_at > NOW()",  # noqa: S608
                (id,),
            )
            found = stmt.fetchone()
        return "" if found is None else str(found[0])  # '' means "no session yet"

    # write(): coatcheck hands back the data to save (an opaque string).
    def write(self, id: str, data: str) -> bool:
        # "Upsert" = insert a new row, or update it if the id already exists.
        with self.pdo.cursor() as stmt:
            stmt.execute(
                f"INSERT INTO `{self.table}` (id, payload, expires_at)"  # noqa: S608
                " VALUES (%s, %s, DATE_ADD(NOW(), INTERVAL 30 MINUTE))"
                " ON DUPLICATE KEY UPDATE"
                " payload = VALUES(payload),"
                " expires_at = VALUES(expires_at)",
                (id, data),
            )
        return True

    # destroy(): called by session.destroy(). Delete this session's row.
    def destroy(self, id: str) -> bool:
        with self.pdo.cursor() as stmt:
            stmt.execute(f"DELETE FROM `{self.table}` WHERE id = %s", (id,))  # noqa: S608
        return True

    # gc(): garbage collection: coatcheck runs this occasionally to bin old rows.
    def gc(self, max_lifetime: int) -> int:
        with self.pdo.cursor() as stmt:
            stmt.execute(f"DELETE FROM `{self.table}` WHERE expires_at < NOW()")  # noqa: S608
            return int(stmt.rowcount)  # how many expired rows were removed

    # --- not in the seed ----------------------------------------------------------------

    def lock(self, id: str, timeout: float) -> bool:
        """A lock on this connection, freed by the server if the connection dies."""
        with self.pdo.cursor() as stmt:
            stmt.execute("SELECT GET_LOCK(%s, %s)", (id, timeout))
            found = stmt.fetchone()
        return found is not None and found[0] == 1

    def unlock(self, id: str) -> bool:
        with self.pdo.cursor() as stmt:
            stmt.execute("SELECT RELEASE_LOCK(%s)", (id,))
            found = stmt.fetchone()
        return found is not None and found[0] == 1

    def ids(self) -> list[str]:
        with self.pdo.cursor() as stmt:
            stmt.execute(f"SELECT id FROM `{self.table}`")  # noqa: S608
            return [row[0] for row in stmt.fetchall()]


# The seed's login(), logout() and isHijacked(), on a coatcheck session.


def login(session: Session, user_id: int) -> None:
    # The single most important line in session security: a new id, the old one deleted.
    session.regenerate_id()
    session["user_id"] = user_id
    session["logged_in"] = True
    # The seed keeps the IP and a user-agent hash in the session to compare later;
    # coatcheck binds the session to a keyed hash of them itself (Config.fingerprint).


def logout(session: Session) -> None:
    session.destroy()  # $_SESSION = [], session_destroy(), and the cookie is expired


def is_hijacked(session: Session) -> bool:
    # True when the request's fingerprint does not match the session's. With the default
    # policy ("reset") coatcheck has already given such a request a fresh, empty session.
    return session.is_bad_hash


# --- wiring it up ---------------------------------------------------------------------


def connect(**settings: Any) -> pymysql.connections.Connection:
    """A connection per handler: one handler serves one request at a time."""
    args: dict[str, Any] = {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}
    return pymysql.connect(**{**args, **settings})


def create_table(table: str = "sessions", **settings: Any) -> None:
    if not _NAME.fullmatch(table):
        raise ValueError("table must be a plain SQL name")
    conn = connect(**settings)
    try:
        with conn.cursor() as cur:
            cur.execute(SCHEMA.format(table=table))
    finally:
        conn.close()


def drop_table(table: str = "sessions", **settings: Any) -> None:
    if not _NAME.fullmatch(table):
        raise ValueError("table must be a plain SQL name")
    conn = connect(**settings)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    finally:
        conn.close()


def store(table: str = "sessions", **settings: Any) -> HandlerStore:
    return HandlerStore(lambda: DatabaseSessionHandler(connect(**settings), table))


def async_store(table: str = "sessions", **settings: Any) -> AsyncHandlerStore:
    """The same handler under asyncio: its blocking calls run in worker threads."""
    return AsyncHandlerStore(lambda: DatabaseSessionHandler(connect(**settings), table))


def main(table: str = "sessions", **settings: Any) -> None:
    create_table(table, **settings)
    sessions = SessionManager(store(table, **settings), Config(cookie_secure=True))
    browser = Client(user_agent="Firefox")
    with sessions.start(client=browser) as session:  # session_start()
        login(session, 42)
        session["role"] = "admin"
    print(f"Stored session for user {session['user_id']} in the database.")
    with sessions.start(session.id, client=browser) as again:
        print(f"Read back: {dict(again)}; hijacked: {is_hijacked(again)}")
    with sessions.start(session.id, client=browser) as mine:
        logout(mine)
    print(f"After logout, live sessions: {sessions.store.count()}")
    with sessions.start(client=browser) as session:
        login(session, 7)
    with sessions.start(session.id, client=Client(user_agent="curl")) as thief:
        print(f"The cookie in another browser: {dict(thief)}, hijacked: {is_hijacked(thief)}")
    print(f"...and the session it stole is gone: live sessions: {sessions.store.count()}")


if __name__ == "__main__":
    main()
