"""``mysql://`` and ``mariadb://``: sessions in a MySQL or MariaDB table.

The async store runs on asyncmy, the sync store on PyMySQL; both are one source
(``_async.py``, with ``_sync.py`` generated from it) and import their driver only when a
store is opened. URL options: :mod:`._config`; SQL: :mod:`._statements`; see
docs/stores/mysql.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._async import AsyncMySQLStore
    from ._sync import MySQLStore

SCHEMES: tuple[str, ...] = ("mysql", "mariadb")
EXTRA = "mysql"

__all__ = ["EXTRA", "SCHEMES", "AsyncMySQLStore", "MySQLStore", "open_async", "open_sync"]


def open_sync(url: str) -> MySQLStore:
    """The sync (PyMySQL) store for a ``mysql://`` or ``mariadb://`` URL."""
    from ._config import parse
    from ._sync import MySQLStore

    return MySQLStore(parse(url))


def open_async(url: str) -> AsyncMySQLStore:
    """The async (asyncmy) store for the same URL."""
    from ._async import AsyncMySQLStore
    from ._config import parse

    return AsyncMySQLStore(parse(url))


def __getattr__(name: str) -> Any:
    if name == "MySQLStore":
        from ._sync import MySQLStore

        return MySQLStore
    if name == "AsyncMySQLStore":
        from ._async import AsyncMySQLStore

        return AsyncMySQLStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
