"""Session cycle on memcached: coatcheck against raw clients doing the same round trips.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck's store makes five round trips per cycle: ``add`` of the lock item, ``gets`` of
the record, then ``gets`` of record and lock together, ``cas`` of the record and ``delete``
of the lock. The baseline sends exactly those five commands on a client built the same
way (pymemcache PooledClient with the same timeouts; for async, the store's own asyncio
text-protocol client, called directly, so that row measures the store's overhead alone),
decoding and re-encoding the same record bytes with orjson, in the same process.
Run: python -m bench.bench_memcached (COATCHECK_TEST_MEMCACHED overrides the server).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pymemcache.client.base import PooledClient  # type: ignore[import-untyped]

from coatcheck import AsyncSessionManager, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.memcached._client import AsyncClient
from coatcheck.stores.memcached._config import parse
from coatcheck.stores.memcached._format import Keys, Lease, exptime, pack, unpack
from tests.support.memcached import drop_namespace

from .common import (
    CONFIG,
    IDLE,
    LEASE,
    TOKEN,
    async_session_cycle,
    async_store_cycle,
    bump,
    namespaced,
    seed,
    session_cycle,
    store_cycle,
)
from .timing import Bench, Row, compare, compare_async, cycles, report

URL = os.environ.get("COATCHECK_TEST_MEMCACHED", "memcached://127.0.0.1:11211")
N = cycles(200)


class Raw:
    """The hand-written equivalent on a session of its own: the store's five commands."""

    def __init__(self, url: str, key: str) -> None:
        keys = Keys(parse(url).prefix)
        self.data, self.lock = keys.data(key), keys.lock(key)

    def lease(self) -> tuple[bytes, int]:
        lease = Lease(TOKEN, time.time() + LEASE)
        return lease.encode(), exptime(LEASE)

    def new_value(self, value: bytes) -> tuple[bytes, int]:
        record = unpack(value)
        expires_at = time.time() + IDLE
        packed = pack(bump(record.payload), expires_at, record.version + 1)
        return packed, exptime(IDLE)

    def owned(self, found: dict[Any, Any], lock: Any) -> None:
        held = Lease.decode(bytes(found[lock][0]))
        assert hmac.compare_digest(held.token.encode(), TOKEN.encode())

    def sync(self, client: Any) -> Callable[[], None]:
        def cycle() -> None:
            assert client.add(self.lock, *self.lease(), noreply=False)
            value, _ = client.gets(self.data)
            unpack(value)
            found = client.gets_many([self.data, self.lock])
            self.owned(found, self.lock)
            packed, ttl = self.new_value(found[self.data][0])
            assert client.cas(self.data, packed, found[self.data][1], ttl, noreply=False)
            client.delete(self.lock, noreply=False)

        return cycle

    def asynchronous(self, client: AsyncClient) -> Callable[[], Awaitable[None]]:
        data, lock = self.data, self.lock

        async def cycle() -> None:
            assert await client.add(lock, *self.lease())
            unpack((await client.gets_many([data]))[data][0])
            found = await client.gets_many([data, lock])
            self.owned(found, lock)
            packed, ttl = self.new_value(found[data][0])
            assert await client.cas(data, packed, found[data][1], ttl)
            await client.delete_many([lock])

        return cycle


def run_sync(size: int) -> Row:
    url = namespaced(URL, "prefix") + ":"
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        s = parse(url)
        client = PooledClient(
            s.servers[0],
            connect_timeout=s.connect_timeout,
            timeout=s.timeout,
            no_delay=True,
            max_pool_size=s.pool_size,
            default_noreply=False,
        )
        raw = Raw(url, storage_key(seed(url, size)[0])).sync(client)
        variants = {
            "session": session_cycle(SessionManager(store, CONFIG), sid),
            "store": store_cycle(store, storage_key(seed(url, size)[0])),
            "raw": raw,
        }
        rounds = compare(variants, N)
        client.close()
        store.close()
        return Row("sync", nbytes, rounds)
    finally:
        drop_namespace(url)


async def run_async(size: int) -> Row:
    url = namespaced(URL, "prefix") + ":"
    try:
        sid, nbytes = seed(url, size)
        store = open_async_store(url)
        s = parse(url)
        client = AsyncClient(s.servers[0], s)
        raw = Raw(url, storage_key(seed(url, size)[0])).asynchronous(client)
        variants = {
            "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
            "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
            "raw": raw,
        }
        rounds = await compare_async(variants, N)
        await client.close()
        await store.close()
        return Row("async", nbytes, rounds)
    finally:
        drop_namespace(url)


LABELS = {
    "session": "coatcheck session",
    "store": "coatcheck store only",
    "raw": "raw client, same 5 trips",
}


def run() -> Bench:
    rows = [run_sync(size) for size in (200, 4096)]
    rows += [asyncio.run(run_async(size)) for size in (200, 4096)]
    return Bench("Memcached", LABELS, ("raw",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
