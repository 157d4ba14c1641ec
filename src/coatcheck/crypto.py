"""Authenticated encryption under a list of keys, for data kept where others can read it.

A :class:`Keyring` seals with its first key (the newest) and opens with any of its keys, so
keys rotate without a flag day: put a new key first, keep the old ones until nothing sealed
under them is left. Every sealed value names its key by a short id, so opening tries one key,
never all of them.

A sealed value is ``FORMAT`` (1 byte) | key id (4) | nonce (12) | ciphertext | tag (16), by
AES-256-GCM with a random 96-bit nonce. The first five bytes and the caller's associated data
are authenticated with it: a value moved to another context (another storage key) or
relabelled with another key id does not open. ``FORMAT`` is 0xC1, a byte no UTF-8 text (so no
JSON) starts with, so sealed values and plain JSON cannot be mistaken for each other.

Keys are at least 32 random bytes, given raw or as base64url text (:func:`new_key` makes
one). Each key is stretched with HKDF under a ``purpose`` label, so one secret used for two
purposes (an encrypted store and a cookie store, say) yields unrelated keys and key ids.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigError

FORMAT: Final = 0xC1
"""First byte of every sealed value (format 1)."""
KEY_BYTES: Final = 32
"""The least key material accepted, in bytes."""
_ID_BYTES = 4
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEADER_BYTES = 1 + _ID_BYTES
OVERHEAD: Final = _HEADER_BYTES + _NONCE_BYTES + _TAG_BYTES
"""How many bytes sealing adds to a value (33)."""

_SEPARATORS = re.compile(r"[\s,]+")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")

Key = bytes | str
"""Key material: raw bytes, or base64url text (padding optional)."""


def new_key() -> str:
    """A new random key (32 bytes from :mod:`secrets`) as base64url text without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii").rstrip("=")


def parse_keys(text: str) -> list[str]:
    """The keys in ``text``, separated by commas or whitespace, in the order given."""
    return [part for part in _SEPARATORS.split(text.strip()) if part]


def keys_from_env(name: str) -> list[str]:
    """The keys in environment variable ``name`` (newest first); ConfigError when unset."""
    keys = parse_keys(os.environ.get(name, ""))
    if not keys:
        raise ConfigError(
            f"the environment variable {name} holds no encryption keys: set it to one or more "
            "base64url keys of 32 random bytes, newest first, separated by commas "
            "(make one with: python -c 'import coatcheck.crypto as c; print(c.new_key())')"
        )
    return keys


def key_material(key: Key, position: int = 1) -> bytes:
    """The raw bytes of ``key``; ConfigError (naming only its position) when it is unusable."""
    if isinstance(key, str):
        text = key.strip()
        if not _BASE64URL.fullmatch(text):
            raise ConfigError(
                f"encryption key {position} is not base64url text (A-Z, a-z, 0-9, '-', '_')"
            )
        try:
            bare = text.rstrip("=")
            raw = base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
        except (binascii.Error, ValueError):
            raise ConfigError(f"encryption key {position} is not valid base64url") from None
    elif isinstance(key, bytes | bytearray):
        raw = bytes(key)
    else:
        raise ConfigError(f"encryption key {position} must be bytes or base64url text")
    if len(raw) < KEY_BYTES:
        raise ConfigError(
            f"encryption key {position} is {len(raw)} bytes; keys must be at least {KEY_BYTES} "
            "random bytes (coatcheck.crypto.new_key() makes one)"
        )
    return raw


class Keyring:
    """Seals under the newest key, opens under any; see the module's docstring for the format.

    ``keys``: newest first, raw bytes or base64url text (one key alone is fine too).
    ``purpose``: a label naming what the keys protect; values sealed for one purpose never
    open for another.
    """

    def __init__(self, keys: Key | Iterable[Key], *, purpose: str) -> None:
        if isinstance(keys, bytes | str):
            keys = [keys]
        info = purpose.encode("utf-8")
        self._ciphers: dict[bytes, AESGCM] = {}
        self._order: list[bytes] = []
        for position, key in enumerate(keys, 1):
            raw = key_material(key, position)
            key_id = hmac.new(raw, b"coatcheck key id\0" + info, hashlib.sha256).digest()
            key_id = key_id[:_ID_BYTES]
            if key_id in self._ciphers:
                continue  # the same key listed twice
            derived = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"coatcheck aead\0" + info
            ).derive(raw)
            self._ciphers[key_id] = AESGCM(derived)
            self._order.append(key_id)
        if not self._order:
            raise ConfigError("encryption needs at least one key")

    @property
    def key_ids(self) -> list[bytes]:
        """The keys' 4-byte ids, newest first (safe to log or show: they reveal no key)."""
        return list(self._order)

    def seal(self, data: bytes, aad: bytes = b"") -> bytes:
        """``data`` encrypted and authenticated under the newest key, bound to ``aad``."""
        key_id = self._order[0]
        header = bytes((FORMAT,)) + key_id
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return header + nonce + self._ciphers[key_id].encrypt(nonce, data, header + aad)

    def open(self, sealed: bytes, aad: bytes = b"") -> bytes | None:
        """The data in ``sealed``, or None when no key here sealed it for this ``aad``.

        Fails closed: a value truncated, altered in any byte, sealed under a key not in this
        ring, for another purpose or with another ``aad`` gives None, never an exception.
        """
        if len(sealed) < OVERHEAD or sealed[0] != FORMAT:
            return None
        header = bytes(sealed[:_HEADER_BYTES])
        cipher = self._ciphers.get(header[1:])
        if cipher is None:
            return None
        nonce = bytes(sealed[_HEADER_BYTES : _HEADER_BYTES + _NONCE_BYTES])
        try:
            return cipher.decrypt(
                nonce, bytes(sealed[_HEADER_BYTES + _NONCE_BYTES :]), header + aad
            )
        except InvalidTag:
            return None

    def is_current(self, sealed: bytes) -> bool:
        """Whether ``sealed`` names the newest key (its header only: :meth:`open` checks it)."""
        return looks_sealed(sealed) and bytes(sealed[1:_HEADER_BYTES]) == self._order[0]


def looks_sealed(value: bytes) -> bool:
    """Whether ``value`` has the sealed format's first byte (and so cannot be plain JSON)."""
    return len(value) > 0 and value[0] == FORMAT
