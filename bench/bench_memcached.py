"""Session cycle on memcached: coatcheck against raw clients, locked and unlocked.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck's store makes two round trips per cycle: ``add`` of the lock item and ``gets`` of
record and lock, sent together; then ``cas`` of the record and a ``delete ... noreply`` of
the lock, sent together (memcached answers the ``cas`` only). Two raw baselines, each on a session
of its own, decode and re-encode the same record bytes with orjson, in the same process:

- "raw client, same 2 trips": those commands sent by the store's own clients called
  directly (``Client``/``AsyncClient``, the same pool and timeouts), so the row measures
  what the store and its lock logic add on top of them;
- "raw unlocked floor" (the floor the ratios use): ``get`` of the record, then ``set`` of
  the new one, no lock at all: pymemcache's ``PooledClient`` (the same timeouts and pool
  size) for sync, and for async one bare asyncio stream with no pool and no timeouts.

"coatcheck session, lock none" is the session cycle with ``lock_mode="none"``.
Run: python -m bench.bench_memcached (COATCHECK_TEST_MEMCACHED overrides the server).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from pymemcache.client.base import PooledClient  # type: ignore[import-untyped]

from coatcheck import AsyncSessionManager, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.memcached._async_client import AsyncClient
from coatcheck.stores.memcached._config import parse
from coatcheck.stores.memcached._format import Keys, Lease, exptime, pack, unpack
from coatcheck.stores.memcached._sync_client import Client
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
UNLOCKED = replace(CONFIG, lock_mode="none")  # the same cycle with no lock (last writer wins)


class Floor:
    """The raw unlocked floor on a session of its own: ``get`` the record, ``set`` it back.

    Sync: pymemcache's ``PooledClient``. Async: one bare asyncio stream speaking the same two
    text-protocol commands (no pool, no timeouts): the least any asyncio driver can do.
    """

    def __init__(self, url: str, key: str) -> None:
        self.data = Keys(parse(url).prefix).data(key)

    def new_value(self, value: bytes) -> tuple[bytes, int]:
        record = unpack(value)
        packed = pack(bump(record.payload), time.time() + IDLE, record.version + 1)
        return packed, exptime(IDLE)

    def sync(self, client: Any) -> Callable[[], None]:
        def cycle() -> None:
            value = client.get(self.data)
            packed, ttl = self.new_value(value)
            assert client.set(self.data, packed, ttl, noreply=False)

        return cycle

    def asynchronous(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Callable[[], Awaitable[None]]:
        get = f"get {self.data}\r\n".encode()

        async def cycle() -> None:
            writer.write(get)
            head = (await reader.readline()).split()
            value = (await reader.readexactly(int(head[3]) + 2))[:-2]
            assert await reader.readline() == b"END\r\n"
            packed, ttl = self.new_value(value)
            writer.write(f"set {self.data} 0 {ttl} {len(packed)}\r\n".encode() + packed + b"\r\n")
            assert await reader.readline() == b"STORED\r\n"

        return cycle


class Raw:
    """The hand-written equivalent on a session of its own: the store's two round trips."""

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

    def sync(self, client: Client) -> Callable[[], None]:
        data, lock = self.data, self.lock

        def cycle() -> None:
            taken, found = client.add_gets(lock, *self.lease(), [lock, data])
            assert taken
            packed, ttl = self.new_value(found[data][0])
            relock, relock_ttl = self.lease()  # what the store puts back if the cas is refused
            written, _ = client.cas_release(
                data, packed, found[data][1], ttl, lock, relock, relock_ttl
            )
            assert written

        return cycle

    def asynchronous(self, client: AsyncClient) -> Callable[[], Awaitable[None]]:
        data, lock = self.data, self.lock

        async def cycle() -> None:
            taken, found = await client.add_gets(lock, *self.lease(), [lock, data])
            assert taken
            packed, ttl = self.new_value(found[data][0])
            relock, relock_ttl = self.lease()  # what the store puts back if the cas is refused
            written, _ = await client.cas_release(
                data, packed, found[data][1], ttl, lock, relock, relock_ttl
            )
            assert written

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
        ours = Client(s.servers[0], s)
        raw = Raw(url, storage_key(seed(url, size)[0])).sync(ours)
        floor = Floor(url, storage_key(seed(url, size)[0])).sync(client)
        variants = {
            "session": session_cycle(SessionManager(store, CONFIG), sid),
            "none": session_cycle(SessionManager(store, UNLOCKED), seed(url, size)[0]),
            "store": store_cycle(store, storage_key(seed(url, size)[0])),
            "raw": raw,
            "floor": floor,
        }
        rounds = compare(variants, N)
        client.close()
        ours.close()
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
        reader, writer = await asyncio.open_connection(*s.servers[0])
        floor = Floor(url, storage_key(seed(url, size)[0])).asynchronous(reader, writer)
        variants = {
            "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
            "none": async_session_cycle(AsyncSessionManager(store, UNLOCKED), seed(url, size)[0]),
            "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
            "raw": raw,
            "floor": floor,
        }
        rounds = await compare_async(variants, N)
        writer.close()
        await client.close()
        await store.close()
        return Row("async", nbytes, rounds)
    finally:
        drop_namespace(url)


LABELS = {
    "session": "coatcheck session",
    "none": "coatcheck session, lock none",
    "store": "coatcheck store only",
    "raw": "raw client, same 2 trips",
    "floor": "raw unlocked floor",
}


def run() -> Bench:
    rows = [run_sync(size) for size in (200, 4096)]
    rows += [asyncio.run(run_async(size)) for size in (200, 4096)]
    return Bench("Memcached", LABELS, ("floor",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
