"""Stores that wrap stores, as Symfony composes its session handlers.

A wrapper is a store (it implements the contract in :mod:`coatcheck.stores.base`) built
around another store; wrappers compose (``EncryptedStore(SomeOtherWrapper(store), keys)``).
Like stores, they import only the core and the store contract.

- :mod:`.encrypted`: every payload encrypted and authenticated at rest (AES-256-GCM),
  with key rotation; on by URL with ``?encrypt=env:VARIABLE`` on any store URL.
- :mod:`.migrating`: a move between stores with no downtime (read the old store, write
  both, copy the rest); by URL with ``?migrate_to=env:VARIABLE`` on the old store's URL.
"""

from __future__ import annotations

from .encrypted import (
    UNREADABLE,
    AsyncEncryptedStore,
    EncryptedStore,
    RecordCipher,
    reencrypt,
    reencrypt_async,
)
from .migrating import (
    AsyncMigratingStore,
    CopyReport,
    MigratingStore,
    acopy_sessions,
    copy_sessions,
)

__all__ = [
    "UNREADABLE",
    "AsyncEncryptedStore",
    "AsyncMigratingStore",
    "CopyReport",
    "EncryptedStore",
    "MigratingStore",
    "RecordCipher",
    "acopy_sessions",
    "copy_sessions",
    "reencrypt",
    "reencrypt_async",
]
