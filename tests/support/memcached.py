"""Cleanup for memcached test namespaces: delete every item under a URL's prefix."""

from __future__ import annotations

from pymemcache.client.base import Client  # type: ignore[import-untyped]

from coatcheck.stores.memcached import open_sync

__all__ = ["drop_namespace"]


def drop_namespace(url: str) -> None:
    """Delete every item under the URL's prefix (tests and benchmarks clean up with it).

    Lists names with the store's metadump listing and deletes them on every server; never
    ``flush_all``, which would wipe every other user of a shared server.
    """
    store = open_sync(url)
    clients = [
        Client(server, timeout=5, default_noreply=False) for server in store.settings.servers
    ]
    try:
        empty = 0
        for _ in range(6):  # a crawl can miss an item in use: stop after two empty listings
            names = store.names()
            empty = 0 if names else empty + 1
            if empty == 2:
                return
            for start in range(0, len(names), 200):
                for client in clients:
                    client.delete_many(names[start : start + 200], noreply=False)
    finally:
        store.close()
        for client in clients:
            client.close()
