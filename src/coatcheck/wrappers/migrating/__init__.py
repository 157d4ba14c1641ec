"""Moving sessions between stores with no downtime, as Symfony's MigratingSessionHandler.

``MigratingStore(old, new)`` / ``AsyncMigratingStore`` read from the old store and write to
both; ``copy_sessions(source, target)`` / ``acopy_sessions`` copy what the new store lacks
(``coatcheck migrate --from URL --to URL``). By URL, the old store's URL takes
``?migrate_to=env:VARIABLE``, the variable holding the new store's URL. The three deploy
steps are in docs/migrating/between-stores.md.

``_async.py`` is the source of the wrapper and the copy, ``_sync.py`` its generated twin;
failures of the new store are :mod:`._failures`'s, URLs :mod:`._url`'s.
"""

from __future__ import annotations

from ._async import AsyncMigratingStore
from ._async import copy_sessions as acopy_sessions
from ._report import CopyReport, Progress
from ._sync import MigratingStore, copy_sessions
from ._url import OPTION, Migration, split_url

__all__ = [
    "OPTION",
    "AsyncMigratingStore",
    "CopyReport",
    "MigratingStore",
    "Migration",
    "Progress",
    "acopy_sessions",
    "copy_sessions",
    "split_url",
]
