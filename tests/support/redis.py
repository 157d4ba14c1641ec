"""Cleanup for redis test namespaces (kept out of the production package)."""

from __future__ import annotations

from typing import Any

from coatcheck.stores.redis import RedisStore, parse

_BATCH = 500


def drop_namespace(url: str) -> None:
    """Delete every key under the URL's prefix (tests and benchmarks clean up with it)."""
    store = RedisStore(parse(url))
    try:
        client = store.client()
        batch: list[bytes] = []
        for name in client.scan_iter(match=store.keys.all_pattern, count=_BATCH):
            batch.append(name)
            if len(batch) >= _BATCH:
                _unlink(client, batch)
        _unlink(client, batch)
    finally:
        store.close()


def _unlink(client: Any, names: list[bytes]) -> None:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.unlink(name)  # one key per command: names may sit on different cluster slots
    pipe.execute()
    names.clear()


__all__ = ["drop_namespace"]
