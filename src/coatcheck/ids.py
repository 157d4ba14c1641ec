"""Session ids: generation, syntax check, and the storage key derived from an id.

An id is ``id_bytes`` (default 32, so 256 bits) from :mod:`secrets`, base64url without
padding. Stores only ever see :func:`storage_key` of it, a SHA-256 hex digest, so a leaked
store does not hand out live session ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# a str pattern with an explicit ASCII class: no other character can match it
_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


def id_length(id_bytes: int) -> int:
    """Length in characters of an unpadded base64url id of ``id_bytes`` bytes."""
    return (id_bytes * 8 + 5) // 6


def new_id(id_bytes: int = 32) -> str:
    """A fresh session id (PHP's create_sid)."""
    return secrets.token_urlsafe(id_bytes)


def is_well_formed(value: str | None, id_bytes: int = 32) -> bool:
    """True when ``value`` has exactly the length and alphabet of an id we issue.

    Checked before any store call, so a malformed cookie (empty, huge, NUL, CR/LF,
    ``../``, quotes, non-ASCII) never reaches a store.
    """
    if not value or len(value) != id_length(id_bytes):
        return False
    return _URLSAFE.fullmatch(value) is not None


def digest(session_id: str) -> bytes:
    """SHA-256 of an id: hex-encoded it is the storage key (hashed once per request)."""
    return hashlib.sha256(session_id.encode("ascii")).digest()


def storage_key(session_id: str) -> str:
    """The key a store files a session under: SHA-256 of the id, 64 hex characters."""
    return digest(session_id).hex()


_STORAGE_KEY = re.compile(r"[0-9a-f]{64}")


def check_storage_key(key: str) -> str:
    """``key`` if it is a storage key as :func:`storage_key` makes them (64 lower-case hex
    characters); ValueError otherwise. Every store validates keys with this, the same way."""
    if not _STORAGE_KEY.fullmatch(key):
        raise ValueError("not a storage key: expected 64 lower-case hex characters")
    return key


def keyed_hash(session_id: str, purpose: bytes, message: bytes) -> str:
    """A keyed BLAKE2b MAC of ``message`` (fingerprints), keyed by the id's random bytes.

    The key is the id itself, which no store ever sees (stores get its SHA-256 only), so
    whoever reads a store cannot recompute a fingerprint or brute-force the user agent and
    address behind it. ``session_id`` must be well formed: 32 to 64 random bytes, within
    BLAKE2b's 64-byte key limit.
    """
    key = base64.urlsafe_b64decode(session_id + "=" * (-len(session_id) % 4))
    return hashlib.blake2b(message, key=key, person=purpose[:16], digest_size=32).hexdigest()


_SUCCESSOR_LABEL = b"coatcheck/v1/regenerate-successor"
_NONCE_BYTES = 12
_TAG_BYTES = 16


def seal_successor(old_id: str, new_id_value: str) -> str:
    """Encrypt the id a session moved to, with AES-256-GCM under a key derived from the old id.

    Used for the regeneration grace window: a request still carrying the old id can find
    the new one, but the store (which only knows hashes) cannot, and cannot alter it
    unnoticed either. The nonce is random, so sealing the same pair twice differs.
    """
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = _successor_cipher(old_id).encrypt(
        nonce, new_id_value.encode("ascii"), _SUCCESSOR_LABEL
    )
    return base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def open_successor(old_id: str, sealed: str) -> str | None:
    """The id :func:`seal_successor` sealed under ``old_id``; None for anything else.

    Fails closed: a value tampered with, truncated, re-encoded (another base64 spelling of
    the same bytes) or sealed under another id yields None, never an exception.
    """
    try:
        raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
        if base64.urlsafe_b64encode(raw).decode("ascii") != sealed:
            return None  # only the exact spelling seal_successor wrote is accepted
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            return None
        nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
        plain = _successor_cipher(old_id).decrypt(nonce, body, _SUCCESSOR_LABEL)
        return plain.decode("ascii")
    except (InvalidTag, ValueError, TypeError, AttributeError):
        # UnicodeError is a ValueError (binascii.Error too)
        return None


def _successor_cipher(old_id: str) -> AESGCM:
    """AES-256-GCM keyed by HKDF-SHA256 of the old id, under a label of its own, so the key
    is unrelated to the storage key (SHA-256 of the id) and to fingerprint keys."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_SUCCESSOR_LABEL).derive(
        old_id.encode("ascii")
    )
    return AESGCM(key)


def same(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
