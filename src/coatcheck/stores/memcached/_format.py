"""What the memcached store puts in memcached: item names, record and lock values, TTLs.

Each session has two items: the record (``<ns>s:<key>``: a 19-byte header with the version
and the exact ``expires_at``, then the payload) and its lock (``<ns>l:<key>``:
``"<lock_until> <token>"``). The exact deadlines live in the values, because memcached
keeps time in whole seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from ...contract import Stored
from ...errors import StoreUnavailable
from ...ids import check_storage_key

_CLEAN = re.compile(r"[\x21-\x7e]*")  # printable ASCII without space: safe in a memcached key
_MAX_CLEAN_PREFIX = 120  # with "s:" and a 64-character storage key, well under 250 bytes
_HASHED_PREFIX_KEEP = 32
_RELATIVE_TTL_MAX = 30 * 24 * 3600  # larger exptimes are read as absolute unix times
_HEADER = struct.Struct(">2sBQd")  # magic, format, version, expires_at
_MAGIC = b"cc"
_FORMAT = 1


class Keys:
    """Memcached item names for one prefix: always valid, at most 250 bytes, never the raw id.

    A prefix that is printable ASCII without spaces and short enough is used as it is. Any
    other prefix (long, spaces, control characters, non-ASCII) becomes its first safe
    characters plus a SHA-256 of the whole prefix, so every name has the same readable
    start and a fixed length.
    """

    def __init__(self, prefix: str) -> None:
        if _CLEAN.fullmatch(prefix) and len(prefix) <= _MAX_CLEAN_PREFIX:
            self.ns = prefix
        else:
            safe = "".join(c if _CLEAN.fullmatch(c) else "_" for c in prefix)
            digest = hashlib.sha256(prefix.encode("utf-8", "replace")).hexdigest()[:32]
            self.ns = f"{safe[:_HASHED_PREFIX_KEEP]}~{digest}:"

    def data(self, key: str) -> str:
        return self.ns + "s:" + check_storage_key(key)

    def lock(self, key: str) -> str:
        return self.ns + "l:" + check_storage_key(key)

    def storage_key(self, item: str) -> str | None:
        """The storage key of a record item's name, or None for anything else."""
        head = self.ns + "s:"
        if not item.startswith(head):
            return None
        try:
            return check_storage_key(item[len(head) :])
        except ValueError:
            return None


def pack(payload: bytes, expires_at: float, version: int) -> bytes:
    return _HEADER.pack(_MAGIC, _FORMAT, version, expires_at) + payload


def unpack(value: bytes) -> Stored:
    if len(value) < _HEADER.size or value[:2] != _MAGIC or value[2] != _FORMAT:
        raise StoreUnavailable("memcached returned a session record coatcheck did not write")
    _, _, version, expires_at = _HEADER.unpack_from(value)
    return Stored(value[_HEADER.size :], expires_at, version)


@dataclass(frozen=True, slots=True)
class Lease:
    """A lock item's value: whose lock, and until when (on the app's clock)."""

    token: str
    until: float

    def encode(self) -> bytes:
        return f"{self.until!r} {self.token}".encode()

    @staticmethod
    def decode(value: bytes) -> Lease:
        until, _, token = value.decode("ascii", "replace").partition(" ")
        try:
            return Lease(token, float(until))
        except ValueError:
            return Lease("", 0.0)  # unreadable: treat as stale, it can be taken over

    def live(self, now: float) -> bool:
        return self.until > now

    def held_by(self, token: str, now: float) -> bool:
        return self.live(now) and hmac.compare_digest(self.token.encode(), token.encode())


STALE = Lease("", 0.0).encode()
"""What a release near the end of a lease leaves in the lock item for its last second."""


def exptime(ttl: float) -> int:
    """Memcached's exptime for ``ttl`` seconds: whole seconds, rounded up, +1 s of slack.

    Memcached's clock ticks once a second, so a TTL rounded down could drop an item early.
    Up to 30 days the exptime is relative; beyond, memcached reads it as a unix time on
    its own clock, which is the real time whatever clock the app injected.
    """
    seconds = max(1, math.ceil(ttl)) + 1
    if seconds > _RELATIVE_TTL_MAX:
        return math.ceil(time.time()) + seconds
    return seconds


def metadump_names(lines: Iterable[bytes], ns: str) -> list[str]:
    """Item names under ``ns`` from ``lru_crawler metadump`` lines (``key=<urlencoded> ...``)."""
    out: list[str] = []
    for line in lines:
        if line.startswith(b"key="):
            name = unquote(line[4:].split(b" ", 1)[0].decode("ascii", "replace"))
            if name.startswith(ns):
                out.append(name)
    return out
