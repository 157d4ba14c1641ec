"""The encrypted store's decisions, without I/O: what to store, and what a read gives back.

Both :class:`~coatcheck.wrappers.EncryptedStore` and its async twin only move bytes through
a :class:`RecordCipher`; every rule about keys, plaintext and failures lives here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from ...contract import ReadResult, Stored
from ...crypto import Key, Keyring, looks_sealed

PURPOSE: Final = "coatcheck encrypted store record"
"""The :class:`~coatcheck.crypto.Keyring` purpose: keys used elsewhere yield other subkeys."""

UNREADABLE: Final = b"\x00coatcheck: this session record could not be decrypted"
"""The payload a read returns for a record that does not decrypt.

It has no header line, so the session engine treats it as a corrupt record: the request gets
a fresh session and the record is deleted. Code copying records (a migration) can test for
it and skip them.
"""

security_log = logging.getLogger("coatcheck.security")


def _aad(key: str) -> bytes:
    """Associated data: the storage key, so a record copied under another key never opens."""
    return b"coatcheck session record\0" + key.encode("utf-8")


class RecordCipher:
    """Seals payloads for storage under their storage key, and opens them again.

    ``keys``: newest first, raw bytes or base64url text, at least 32 bytes each (or a
    :class:`~coatcheck.crypto.Keyring` built with :data:`PURPOSE`). New records are sealed
    under the first key; records under any listed key are read.

    ``read_plaintext``: also read records that are not encrypted at all, the ones written
    before encryption was turned on. Off by default: whoever can write to the store could
    then plant a plaintext session, so turn it on only for a migration window (and run
    :func:`~coatcheck.wrappers.reencrypt` to close it).
    """

    def __init__(
        self, keys: Key | Iterable[Key] | Keyring, *, read_plaintext: bool = False
    ) -> None:
        self.keyring = keys if isinstance(keys, Keyring) else Keyring(keys, purpose=PURPOSE)
        self.read_plaintext = read_plaintext

    def seal(self, key: str, payload: bytes) -> bytes:
        """What to store under ``key`` for ``payload``."""
        return self.keyring.seal(payload, _aad(key))

    def open(self, key: str, stored: bytes) -> bytes | None:
        """The payload stored under ``key``, or None when it cannot be trusted."""
        if looks_sealed(stored):
            return self.keyring.open(stored, _aad(key))
        return bytes(stored) if self.read_plaintext else None

    def opened(self, key: str, result: ReadResult) -> ReadResult:
        """A store's read result with its payload opened; :data:`UNREADABLE` if it fails."""
        if not isinstance(result, Stored):
            return result  # None or LOCKED
        payload = self.open(key, result.payload)
        if payload is None:
            payload = UNREADABLE
            if looks_sealed(result.payload):
                security_log.warning(
                    "an encrypted session record did not decrypt (altered, moved to another "
                    "session, or sealed under a key no longer configured); it is treated as "
                    "corrupt"
                )
            else:
                security_log.warning(
                    "an unencrypted session record was refused (written before encryption "
                    "was on? see read_plaintext); it is treated as corrupt"
                )
        return Stored(payload, result.expires_at, result.version)

    def is_current(self, stored: bytes) -> bool:
        """Whether ``stored`` is sealed under the newest key (nothing for reencrypt to do)."""
        return self.keyring.is_current(stored)
