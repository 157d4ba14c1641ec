"""``memory://``: sessions in this process only. For tests, demos and single-process apps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from ..locks import Row
from ._rows import Part, RowAccess, Rows
from ._rows_async import AsyncRowStore
from ._rows_sync import RowStore
from ._url import Options
from .base import Meta

SCHEMES: tuple[str, ...] = ("memory",)
EXTRA = ""


class _DictRows(Rows):
    def __init__(self) -> None:
        self.data: dict[str, Row] = {}

    def get(self, key: str) -> Row | None:
        return self.data.get(key)

    def put(self, key: str, row: Row, part: Part) -> None:
        self.data[key] = row

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class _Memory(RowAccess):
    """A dict behind a thread lock. Every thread of the process sees the same sessions."""

    shared = False
    blocks = False  # a dict and a short-held lock: async runs calls inline

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows = _DictRows()

    @contextmanager
    def transaction(self, *, create: bool = False) -> Iterator[Rows]:
        with self._lock:
            yield self._rows

    def delete_expired(self, now: float) -> int:
        with self._lock:
            data = self._rows.data
            dead = [key for key, row in data.items() if row.expires_at <= now]
            for key in dead:
                del data[key]
        return len(dead)

    def metas(self, now: float) -> list[Meta]:
        with self._lock:
            return [
                Meta(key, row.expires_at, len(row.payload), row.locked(now))
                for key, row in self._rows.data.items()
                if row.expires_at > now
            ]


class MemoryStore(_Memory, RowStore):
    """Sessions in a dict of this process."""


class AsyncMemoryStore(_Memory, AsyncRowStore):
    """Sessions in a dict of this process, for asyncio (calls run inline: they never wait)."""


def open_sync(url: str) -> MemoryStore:
    Options("memory", urlsplit(url).query).done()
    return MemoryStore()


def open_async(url: str) -> AsyncMemoryStore:
    Options("memory", urlsplit(url).query).done()
    return AsyncMemoryStore()
