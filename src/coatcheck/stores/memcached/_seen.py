"""What a memcached store object last read of a session: enough to write it back in one trip.

A read leaves the record's cas unique and version here, and with a lock the lease it took,
under (storage key, token). The write that follows in the same request takes them back and
sends one ``cas``: memcached applies it only if the record is still the one that was read,
so nothing read here can make a write land on a record it did not see. What is missing (a
write from another store object, a full list, a lease close to its end) costs only the
slower path, which reads first.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import suppress
from typing import NamedTuple

LIMIT = 10_000
"""Entries kept at most; the oldest goes first (a request that read and never wrote)."""


class Seen(NamedTuple):
    cas: int
    version: int
    until: float  # the lease's end on the app's clock; 0 for a read without a lock


class Reads:
    """Last reads by (storage key, token or None). Safe across threads: each step is one
    call on an ``OrderedDict``, which the interpreter runs whole."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str, str | None], Seen] = OrderedDict()

    def keep(self, key: str, token: str | None, seen: Seen) -> None:
        self._seen[(key, token)] = seen
        if len(self._seen) > LIMIT:
            with suppress(KeyError):  # another thread emptied it meanwhile
                self._seen.popitem(last=False)

    def take(self, key: str, token: str | None) -> Seen | None:
        return self._seen.pop((key, token), None)

    def __len__(self) -> int:
        return len(self._seen)
