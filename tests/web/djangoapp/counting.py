"""A real SQLite store that records which store methods were called (no faking)."""

from __future__ import annotations

from typing import Any

from coatcheck.stores.sqlite import SQLiteStore


class CountingStore(SQLiteStore):
    """A real SQLite store that records which store methods were called."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.calls: list[str] = []

    def read(self, *a: Any, **k: Any) -> Any:
        self.calls.append("read")
        return super().read(*a, **k)

    def write(self, *a: Any, **k: Any) -> int:
        self.calls.append("write")
        return super().write(*a, **k)

    def update_timestamp(self, *a: Any, **k: Any) -> None:
        self.calls.append("update_timestamp")
        super().update_timestamp(*a, **k)

    def release(self, *a: Any, **k: Any) -> None:
        self.calls.append("release")
        super().release(*a, **k)

    def destroy(self, *a: Any, **k: Any) -> None:
        self.calls.append("destroy")
        super().destroy(*a, **k)

    def gc(self) -> int:
        self.calls.append("gc")
        return super().gc()
