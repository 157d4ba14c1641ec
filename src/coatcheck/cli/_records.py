"""Records as the admin commands see them: a store's metadata plus the payload's header.

Every record is named by its storage key (a SHA-256 hash), never by a session id. A record
is a session, a user's index of sessions (``Header.index``), or corrupt (a payload that is
not ours, or that no key decrypts); only sessions are listed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .. import record
from ..contract import Meta, Stored, as_stored
from ..stores.base import Store
from ._base import Failure

_PREFIX = re.compile(r"[0-9a-f]{1,64}")


@dataclass(frozen=True)
class Record:
    """One stored record, read now."""

    key: str
    stored_until: float  # the store's expires_at: the idle deadline plus any retention
    size: int  # bytes as stored
    locked: bool
    header: record.Header | None  # None: corrupt or unreadable
    data: bytes

    @property
    def is_session(self) -> bool:
        return self.header is not None and not self.header.index

    @property
    def is_index(self) -> bool:
        return self.header is not None and self.header.index

    @property
    def expires(self) -> float:
        """The idle deadline: the stored deadline less the retention (database_ttl)."""
        if self.header is None:
            return self.stored_until
        return self.header.idle_deadline(self.stored_until)

    def expired(self, now: float) -> bool:
        """Past its idle deadline but still kept (database_ttl): expired-but-kept."""
        return self.expires <= now

    @property
    def tombstone(self) -> bool:
        return self.header is not None and self.header.successor is not None

    def last_access(self, idle_timeout: float) -> float:
        """When the session was last used, to within the app's touch_threshold (see
        :meth:`coatcheck.record.Header.last_access`)."""
        if self.header is None:
            return self.stored_until - idle_timeout
        return self.header.last_access(self.stored_until, idle_timeout)

    def flags(self, now: float) -> list[str]:
        out = []
        if self.expired(now):
            out.append("expired")
        if self.locked:
            out.append("locked")
        if self.tombstone:
            out.append("tombstone")
        return out

    def summary(self, now: float, idle_timeout: float) -> dict[str, Any]:
        """The listing's fields, for ``--json``."""
        assert self.header is not None
        return {
            "key": self.key,
            "user": self.header.user,
            "created": self.header.created,
            "last_access": self.last_access(idle_timeout),
            "expires": self.expires,
            "size": self.size,
            "flags": self.flags(now),
        }


_CHUNK = 500
"""Keys per ``read_many`` call in :func:`load_all`: one round trip each on most stores."""


def load(store: Store, meta: Meta, now: float) -> Record | None:
    """The record ``meta`` describes, read now; None if it is gone (or expired) since."""
    return _record(meta, as_stored(store.read(meta.key)), now)


def _record(meta: Meta, got: Stored | None, now: float) -> Record | None:
    if got is None or got.expires_at <= now:
        return None
    try:
        header, data = record.unpack(got.payload)
    except ValueError:  # not ours, or sealed under a key this store no longer has
        return Record(meta.key, got.expires_at, meta.size, meta.locked, None, b"")
    return Record(meta.key, got.expires_at, meta.size, meta.locked, header, data)


def load_all(
    store: Store, metas: Iterable[Meta], now: float, advance: Callable[[int], None]
) -> Iterator[Record]:
    """Every record still there, in the order of ``metas``, read :data:`_CHUNK` at a time
    (``store.read_many``: a batch query where the store has one); ``advance`` per chunk."""
    chunk: list[Meta] = []
    for meta in metas:
        chunk.append(meta)
        if len(chunk) == _CHUNK:
            yield from _load_chunk(store, chunk, now, advance)
            chunk = []
    if chunk:
        yield from _load_chunk(store, chunk, now, advance)


def _load_chunk(
    store: Store, chunk: list[Meta], now: float, advance: Callable[[int], None]
) -> Iterator[Record]:
    got = store.read_many([meta.key for meta in chunk])
    advance(len(chunk))
    for meta, stored in zip(chunk, got, strict=True):
        found = _record(meta, stored, now)
        if found is not None:
            yield found


def listing_order(metas: Iterable[Meta]) -> list[Meta]:
    """Latest deadline first (about: most recently used first), then by key: a stable order
    that ``--offset`` pages through."""
    return sorted(metas, key=lambda m: (-m.expires_at, m.key))


def resolve(store: Store, prefix: str) -> Meta:
    """The one live record whose storage key starts with ``prefix`` (Failure when there is
    none, or more than one)."""
    prefix = prefix.strip().lower()
    if not _PREFIX.fullmatch(prefix):
        raise Failure("KEY is a storage key or its start, in hex digits as `coatcheck ls` shows")
    found = [meta for meta in store.scan() if meta.key.startswith(prefix)]
    if not found:
        raise Failure(f"no record's key starts with {prefix}")
    if len(found) > 1:
        raise Failure(f"{len(found)} keys start with {prefix}: give more of the key")
    return found[0]
