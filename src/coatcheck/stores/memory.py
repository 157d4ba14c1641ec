"""``memory://``: sessions in this process only. For tests, demos and single-process apps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..locks import Row
from .base import Meta
from .rows import Part, Rows, RowStore


class _DictRows(Rows):
    def __init__(self, data: dict[str, Row]) -> None:
        self.data = data

    def get(self, key: str) -> Row | None:
        return self.data.get(key)

    def put(self, key: str, row: Row, part: Part) -> None:
        self.data[key] = row

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class MemoryStore(RowStore):
    """A dict behind a thread lock. Every thread of the process sees the same sessions."""

    scheme = "memory"
    shared = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows = _DictRows({})

    @contextmanager
    def transaction(self) -> Iterator[Rows]:
        with self._lock:
            yield self._rows

    def expired(self, now: float) -> list[str]:
        with self._lock:
            return [k for k, r in self._rows.data.items() if r.expires_at <= now]

    def metas(self, now: float) -> Iterator[Meta]:
        with self._lock:
            items = list(self._rows.data.items())
        for key, row in items:
            if row.expires_at > now:
                yield Meta(key, row.expires_at, len(row.payload), row.locked(now))
