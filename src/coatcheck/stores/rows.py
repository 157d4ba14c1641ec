"""The public home of the row-store building blocks, for stores written outside coatcheck.

A store that can give a critical section (a transaction, a file lock, a mutex) subclasses
:class:`RowStore` (sync) or :class:`AsyncRowStore` and supplies the row access; the contract's
rules (leases, fencing, versions, expiry) come with the base class, the same code the memory,
file and SQLite stores use. See docs/custom-store.md.
"""

from __future__ import annotations

from ..locks import Row
from ._rows import Part, RowAccess, Rows
from ._rows_async import AsyncRowStore
from ._rows_sync import RowStore

__all__ = ["AsyncRowStore", "Part", "Row", "RowAccess", "RowStore", "Rows"]
