"""Stores that wrap stores, as Symfony composes its session handlers.

A wrapper is a store (it implements the contract in :mod:`coatcheck.stores.base`) built
around another store; wrappers compose (``EncryptedStore(SomeOtherWrapper(store), keys)``).
Like stores, they import only the core and the store contract.

- :mod:`.encrypted`: every payload encrypted and authenticated at rest (AES-256-GCM),
  with key rotation; on by URL with ``?encrypt=env:VARIABLE`` on any store URL.
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

__all__ = [
    "UNREADABLE",
    "AsyncEncryptedStore",
    "EncryptedStore",
    "RecordCipher",
    "reencrypt",
    "reencrypt_async",
]
