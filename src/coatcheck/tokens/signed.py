"""The seed's tiny signed token, done safely: ``base64url(json) "." base64url(hmac)``.

The format is the seed's (PHP: ``hash_hmac('sha256', $body, $secret, true)`` over the
base64url JSON body), so a token the seed's PHP code signs verifies here and the other way
round. What the seed leaves out is added: an expiry (``exp``, required), key rotation (sign
with the newest key, verify with every key still listed), a minimum key length, a size
limit, and a refusal of every non-canonical encoding, so one payload has exactly one token.

:func:`verify` returns the payload, or None for any token it does not accept: tampered,
truncated, re-encoded, expired, signed with a key no longer listed, or malformed. It never
raises for a bad token, so a caller cannot forget an exception type; it raises
``ValueError`` only for bad keys, which is a programming error.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

MIN_KEY = 32  # bytes: HMAC-SHA256 keys shorter than its output weaken it
MAX_TOKEN = 8192  # characters: a token is refused unread beyond this
DEFAULT_LIFETIME = 900.0  # seconds: short, as a token cannot be revoked (seed 001)

Keys = bytes | Sequence[bytes]


def _keys(keys: Keys) -> list[bytes]:
    listed = [keys] if isinstance(keys, bytes | bytearray) else list(keys)
    if not listed:
        raise ValueError("no signing key given")
    for key in listed:
        if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY:
            raise ValueError(
                f"token keys must be at least {MIN_KEY} random bytes "
                "(secrets.token_bytes(32)); a password is not a key"
            )
    return [bytes(k) for k in listed]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    """Decode canonical unpadded base64url; None for anything else (so no re-encoding of
    one token verifies: other padding, other alphabets, stray bits in the last char)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == text else None


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()


def sign(
    payload: Mapping[str, Any],
    keys: Keys,
    *,
    lifetime: float | None = DEFAULT_LIFETIME,
    now: float | None = None,
) -> str:
    """A token carrying ``payload`` (JSON types), valid for ``lifetime`` seconds.

    ``keys``: one key, or a list whose first key signs (rotation: put a new key first and
    keep the old ones listed until their tokens have expired). ``lifetime=None`` keeps the
    payload's own ``exp`` (Unix seconds), which must then be there.
    """
    key = _keys(keys)[0]
    claims = dict(payload)
    if lifetime is not None:
        if lifetime <= 0:
            raise ValueError("lifetime must be greater than 0")
        claims["exp"] = int((time.time() if now is None else now) + lifetime)
    if not isinstance(claims.get("exp"), int) or isinstance(claims["exp"], bool):
        raise ValueError("a token needs an expiry: give lifetime= or an integer 'exp'")
    body = _b64(orjson.dumps(claims))
    token = f"{body}.{_b64(_mac(key, body))}"
    if len(token) > MAX_TOKEN:
        raise ValueError(f"the token would be {len(token)} characters; the limit is {MAX_TOKEN}")
    return token


def verify(
    token: str, keys: Keys, *, leeway: float = 0.0, now: float | None = None
) -> dict[str, Any] | None:
    """The payload of a valid, unexpired token signed by one of ``keys``; None otherwise."""
    listed = _keys(keys)
    if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 1:
        return None
    body, _, sig = token.partition(".")
    given = _unb64(sig)
    if given is None or len(given) != hashlib.sha256().digest_size or not body.isascii():
        return None
    matched = False
    for key in listed:  # every key is tried: the time taken does not tell which one matched
        matched |= hmac.compare_digest(_mac(key, body), given)
    if not matched:
        return None
    raw = _unb64(body)
    if raw is None:
        return None
    try:
        claims = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int) or isinstance(exp, bool):
        return None
    if (time.time() if now is None else now) >= exp + leeway:
        return None
    return dict(claims)
