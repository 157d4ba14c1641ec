"""A real store behind a thin wrapper that tests subclass to make one call fail the way a
network does; every call it does not override goes to the real store unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from coatcheck.stores.base import LockRequest, Meta, ReadResult, Store


class Forwarding(Store):
    """Passes every call (and every optional attribute) on to ``inner``."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return self.inner.read(key, lock)

    def write(self, *args: Any, **kwargs: Any) -> int:
        return self.inner.write(*args, **kwargs)

    def update_timestamp(self, *args: Any, **kwargs: Any) -> None:
        self.inner.update_timestamp(*args, **kwargs)

    def release(self, key: str, token: str) -> None:
        self.inner.release(key, token)

    def destroy(self, key: str) -> None:
        self.inner.destroy(key)

    def gc(self) -> int:
        return self.inner.gc()

    def validate_id(self, key: str) -> bool:
        return self.inner.validate_id(key)

    def count(self) -> int:
        return self.inner.count()

    def scan(self) -> Iterator[Meta]:
        return self.inner.scan()
