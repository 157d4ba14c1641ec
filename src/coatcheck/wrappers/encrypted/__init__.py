"""Encryption at rest: a store wrapper that seals every payload with AES-256-GCM.

``EncryptedStore(inner, keys)`` / ``AsyncEncryptedStore(inner, keys)`` wrap any store; by URL,
any store URL takes ``?encrypt=env:VARIABLE`` (the keys come from that environment variable,
never from the URL). ``reencrypt`` moves every record under the newest key. See
docs/encryption.md.

``_async.py`` is the source of the wrapper's I/O, ``_sync.py`` its generated twin; every
decision (keys, plaintext, failures) is :mod:`._cipher`'s, and URLs are :mod:`._url`'s.
"""

from __future__ import annotations

from ._async import AsyncEncryptedStore
from ._async import reencrypt as reencrypt_async
from ._cipher import PURPOSE, UNREADABLE, RecordCipher
from ._sync import EncryptedStore, reencrypt
from ._url import OPTIONS, Encryption, split_url

__all__ = [
    "OPTIONS",
    "PURPOSE",
    "UNREADABLE",
    "AsyncEncryptedStore",
    "EncryptedStore",
    "Encryption",
    "RecordCipher",
    "reencrypt",
    "reencrypt_async",
    "split_url",
]
