"""Session cycle on memcached: coatcheck against raw pymemcache/aiomcache doing the same trips.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck's store makes five round trips per cycle: ``add`` of the lock item, ``gets`` of
the record, then ``gets`` of record and lock together, ``cas`` of the record and ``delete``
of the lock. The baseline sends exactly those five commands on a client built the same way
(pymemcache PooledClient with the same timeouts; aiomcache with the same pool and the
store's one extra method, a multi-key ``gets``, which aiomcache lacks), decoding and
re-encoding the same record bytes with orjson, in the same process.
Run: python -m bench.bench_memcached (COATCHECK_TEST_MEMCACHED overrides the server).
"""

from __future__ import annotations

import asyncio
import hmac
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from pymemcache.client.base import PooledClient  # type: ignore[import-untyped]

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.base import AsyncStore, LockRequest, ReadResult, Stored
from coatcheck.stores.memcached import (
    Keys,
    Lease,
    _AioClient,
    drop_namespace,
    exptime,
    pack,
    parse,
    unpack,
)

from .timing import Bench, Rounds, Row, compare, compare_async, cycles, report

URL = os.environ.get("COATCHECK_TEST_MEMCACHED", "memcached://127.0.0.1:11211")
N = cycles(200)
CONFIG = Config(gc_probability=0, cookie_secure=True, touch_threshold=60)
TOKEN = "raw-token-raw-token-xx"
LEASE = 30.0


def data(size: int) -> dict[str, object]:
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def prefixed_url() -> str:
    sep = "&" if "?" in URL else "?"
    return f"{URL}{sep}prefix=bench_{uuid.uuid4().hex[:10]}:"


def seed(url: str, size: int) -> tuple[str, int]:
    """A stored session of about ``size`` bytes; returns its id and payload size."""
    store = open_store(url)
    s = SessionManager(store, CONFIG).start()
    s.update(data(size))
    s.write_close()
    stored = store.read(storage_key(s.id))
    store.close()
    return s.id, len(getattr(stored, "payload", b""))


def bump(payload: bytes) -> bytes:
    head, _, body = payload.partition(b"\n")
    decoded = orjson.loads(body)
    decoded["n"] += 1
    return head + b"\n" + orjson.dumps(decoded)


class Raw:
    """The hand-written equivalent on a session of its own: the store's five commands."""

    def __init__(self, url: str, key: str) -> None:
        keys = Keys(parse(url).prefix)
        self.data, self.lock = keys.data(key), keys.lock(key)

    def lease(self) -> tuple[bytes, int]:
        now = time.time()
        lease = Lease(TOKEN, now + LEASE)
        return lease.encode(), exptime(lease.until, now)

    def new_value(self, value: bytes) -> tuple[bytes, int]:
        record = unpack(value)
        expires_at = time.time() + 1440
        packed = pack(bump(record.payload), expires_at, record.version + 1)
        return packed, exptime(expires_at, time.time())

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

    def asynchronous(self, client: _AioClient) -> Callable[[], Awaitable[None]]:
        data, lock = self.data.encode(), self.lock.encode()

        async def cycle() -> None:
            assert await client.add(lock, *self.lease())
            value, _ = await client.gets(data)
            assert value is not None
            unpack(value)
            values, uniques = await client.gets_many(data, lock)
            self.owned({k: (v, uniques[k]) for k, v in values.items()}, lock)
            packed, ttl = self.new_value(values[data])
            assert await client.cas(data, packed, uniques[data], ttl)
            await client.delete(lock)

        return cycle


def version(stored: ReadResult) -> int:
    assert isinstance(stored, Stored)
    return stored.version


def store_cycle(store: Any, key: str) -> Callable[[], Any]:
    """coatcheck's store alone doing the baseline's work: read+lock, bump, fenced write."""
    lock = LockRequest(TOKEN, LEASE)

    def args(stored: ReadResult) -> tuple[str, bytes, float]:
        assert isinstance(stored, Stored)
        return key, bump(stored.payload), time.time() + 1440

    if isinstance(store, AsyncStore):

        async def acycle() -> None:
            got = await store.read(key, lock)
            await store.write(*args(got), expect=version(got), token=TOKEN)

        return acycle

    def cycle() -> None:
        got = store.read(key, lock)
        store.write(*args(got), expect=version(got), token=TOKEN)

    return cycle


def run_sync(size: int) -> tuple[Rounds, int]:
    url = prefixed_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        manager = SessionManager(store, CONFIG)

        def session() -> None:
            s = manager.start(sid)
            s["n"] += 1
            s.write_close()

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
        cycle = store_cycle(store, storage_key(seed(url, size)[0]))
        rounds = compare({"session": session, "store": cycle, "raw": raw}, N)
        client.close()
        store.close()
        return rounds, nbytes
    finally:
        drop_namespace(url)


async def run_async(size: int) -> tuple[Rounds, int]:
    url = prefixed_url()
    try:
        sid, nbytes = seed(url, size)
        store = open_async_store(url)
        manager = AsyncSessionManager(store, CONFIG)

        async def session() -> None:
            s = await manager.start(sid)
            s["n"] += 1
            await s.write_close()

        s = parse(url)
        host, port = s.servers[0]
        client = _AioClient(host, port, pool_size=s.pool_size, pool_minsize=1)
        raw = Raw(url, storage_key(seed(url, size)[0])).asynchronous(client)
        cycle = store_cycle(store, storage_key(seed(url, size)[0]))
        rounds = await compare_async({"session": session, "store": cycle, "raw": raw}, N)
        await client.close()
        await store.close()
        return rounds, nbytes
    finally:
        drop_namespace(url)


LABELS = {
    "session": "coatcheck session",
    "store": "coatcheck store only",
    "raw": "raw client, same 5 trips",
}


def run() -> Bench:
    rows = []
    for size in (200, 4096):
        rounds, nbytes = run_sync(size)
        rows.append(Row("sync", nbytes, rounds))
    for size in (200, 4096):
        rounds, nbytes = asyncio.run(run_async(size))
        rows.append(Row("async", nbytes, rounds))
    return Bench("Memcached", LABELS, ("raw",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
