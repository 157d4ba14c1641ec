"""``postgresql://user@host/db?table=...``: sessions in a PostgreSQL table (psycopg 3).

PHP's equivalent is a PDO session handler on PostgreSQL with ``LOCK_TRANSACTIONAL``; here
locks are leases kept in the row (``lock_token``, ``lock_until``), so a crashed holder loses
the lock when its lease runs out, whichever pooled connection it used.

Clocks: idle deadlines and leases both come from the app's clock (the store's ``clock``,
which a manager's ``clock=`` sets), passed to the statements as a parameter; app servers
sharing a table must keep their clocks in step.

The driver is imported only when a store is opened: ``_async.py`` is the source,
``_sync.py`` its generated twin, ``_statements.py`` the URL options and SQL they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._statements import Settings, Statements, parse_url

if TYPE_CHECKING:
    from ._async import AsyncPostgreSQLStore
    from ._sync import PostgreSQLStore

SCHEMES: tuple[str, ...] = ("postgresql", "postgres")
EXTRA = "postgresql"

__all__ = [
    "EXTRA",
    "SCHEMES",
    "AsyncPostgreSQLStore",
    "PostgreSQLStore",
    "Settings",
    "Statements",
    "open_async",
    "open_sync",
    "parse_url",
]


def open_sync(url: str) -> PostgreSQLStore:
    from ._sync import PostgreSQLStore

    return PostgreSQLStore(parse_url(url))


def open_async(url: str) -> AsyncPostgreSQLStore:
    from ._async import AsyncPostgreSQLStore

    return AsyncPostgreSQLStore(parse_url(url))


def __getattr__(name: str) -> Any:
    """The store classes, imported (with the driver) on first access."""
    if name == "PostgreSQLStore":
        from ._sync import PostgreSQLStore

        return PostgreSQLStore
    if name == "AsyncPostgreSQLStore":
        from ._async import AsyncPostgreSQLStore

        return AsyncPostgreSQLStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
