"""Session cycle on Redis: coatcheck against raw redis-py, locked and unlocked.

coatcheck sends two commands per cycle: EVALSHA of the read+lock script and EVALSHA of the
fenced write script that also releases the lock. The raw baselines run on a client built the
same way (same pool, timeouts, hiredis), re-encoding the same record bytes with orjson, in
the same process, each on a session of its own:

- "raw unlocked floor" (the floor the ratios use): ``GET`` of a plain string key holding the
  record, then ``SET ... EX`` of the bumped record: no lock, no fencing, no version, the
  least any session cycle against Redis can cost;
- "raw, same scripts": exactly the store's two scripts (the store's own sources, so they
  cannot drift) with the same keys and arguments, two ways: redis-py's ``register_script``
  objects, and ``execute_command("EVALSHA", ...)`` as the store does.

Run: python -m bench.bench_redis (COATCHECK_TEST_REDIS overrides the server).
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from typing import Any

from coatcheck import AsyncSessionManager, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.base import Stored
from coatcheck.stores.redis import parse
from coatcheck.stores.redis._clients import async_client, sync_client
from coatcheck.stores.redis._scripts import READ_LOCK, WRITE, Keys
from tests.support.redis import drop_namespace

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

URL = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
N = cycles(200)


def _keys(keys: Keys, key: str, script: str) -> list[str]:
    """The keys the store passes ``script``: a session's data and lock key, and its waiters'
    key where the script takes a third (as the store's lock hand-over has it)."""
    trio = getattr(keys, "trio", None)
    if trio is not None and "KEYS[3]" in script:
        return list(trio(key))
    return keys.pair(key)


class Raw:
    """The hand-written equivalent: the store's two scripts, on a session of its own."""

    def __init__(self, url: str, key: str, client: Any) -> None:
        self.client = client
        keys = Keys(parse(url).prefix)
        self.read_keys = _keys(keys, key, READ_LOCK)
        self.write_keys = _keys(keys, key, WRITE)
        self.read_lock = client.register_script(READ_LOCK)
        self.write = client.register_script(WRITE)

    def lock_args(self) -> list[Any]:
        return [TOKEN, int(LEASE * 1000), repr(time.time())]

    def write_args(self, reply: list[bytes]) -> list[Any]:
        now = time.time()
        expires_at = now + IDLE
        ttl = math.ceil((expires_at - now) * 1000)
        return [bump(reply[0]), repr(expires_at), ttl, reply[2].decode(), TOKEN]

    def evalsha(self, sha: str, keys: list[str], args: list[Any]) -> Any:
        return self.client.execute_command("EVALSHA", sha, len(keys), *keys, *args)

    def script(self) -> None:
        reply = self.read_lock(self.read_keys, self.lock_args())
        assert isinstance(reply, list)
        assert self.write(self.write_keys, self.write_args(reply)) > 0

    def direct(self) -> None:
        reply = self.evalsha(self.read_lock.sha, self.read_keys, self.lock_args())
        assert isinstance(reply, list)
        assert self.evalsha(self.write.sha, self.write_keys, self.write_args(reply)) > 0

    async def ascript(self) -> None:
        reply = await self.read_lock(self.read_keys, self.lock_args())
        assert isinstance(reply, list)
        assert await self.write(self.write_keys, self.write_args(reply)) > 0

    async def adirect(self) -> None:
        reply = await self.evalsha(self.read_lock.sha, self.read_keys, self.lock_args())
        assert isinstance(reply, list)
        assert await self.evalsha(self.write.sha, self.write_keys, self.write_args(reply)) > 0


class Floor:
    """The unlocked floor: ``GET`` then ``SET ... EX`` of one plain key holding the record."""

    def __init__(self, url: str, key: str, client: Any, payload: bytes) -> None:
        self.client = client
        self.name = f"{parse(url).prefix}floor:{key}"  # under the run's prefix: dropped after
        self.payload = payload
        self.ttl = int(IDLE)

    def seed(self) -> None:
        """Store the record (sync client; the async client's twin is :meth:`aseed`)."""
        self.client.set(self.name, self.payload, ex=self.ttl)

    async def aseed(self) -> None:
        await self.client.set(self.name, self.payload, ex=self.ttl)

    def cycle(self) -> None:
        got = self.client.get(self.name)
        assert got is not None
        assert self.client.set(self.name, bump(got), ex=self.ttl)

    async def acycle(self) -> None:
        got = await self.client.get(self.name)
        assert got is not None
        assert await self.client.set(self.name, bump(got), ex=self.ttl)


def record(url: str, sid: str) -> bytes:
    """The stored record of session ``sid``: what the floor keeps under its plain key."""
    store = open_store(url)
    try:
        got = store.read(storage_key(sid))
        assert isinstance(got, Stored)
        return got.payload
    finally:
        store.close()


def run_sync(size: int) -> Row:
    url = namespaced(URL, "prefix") + ":"
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        client = sync_client(parse(url))
        raw = Raw(url, storage_key(seed(url, size)[0]), client)  # sessions of their own
        floor = Floor(url, storage_key(sid), client, record(url, sid))
        floor.seed()
        variants = {
            "session": session_cycle(SessionManager(store, CONFIG), sid),
            "store": store_cycle(store, storage_key(seed(url, size)[0])),
            "script": raw.script,
            "direct": raw.direct,
            "floor": floor.cycle,
        }
        rounds = compare(variants, N)
        client.close()
        client.connection_pool.disconnect()
        store.close()
        return Row("sync", nbytes, rounds)
    finally:
        drop_namespace(url)


async def run_async(size: int) -> Row:
    url = namespaced(URL, "prefix") + ":"
    try:
        sid, nbytes = seed(url, size)
        store = open_async_store(url)
        client = async_client(parse(url))
        raw = Raw(url, storage_key(seed(url, size)[0]), client)
        floor = Floor(url, storage_key(sid), client, record(url, sid))
        await floor.aseed()
        variants = {
            "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
            "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
            "script": raw.ascript,
            "direct": raw.adirect,
            "floor": floor.acycle,
        }
        rounds = await compare_async(variants, N)
        await client.aclose()
        await client.connection_pool.disconnect()
        await store.close()
        return Row("async", nbytes, rounds)
    finally:
        drop_namespace(url)


LABELS = {
    "session": "coatcheck session",
    "store": "coatcheck store only",
    "script": "raw redis-py, same scripts (register_script)",
    "direct": "raw redis-py, same scripts (execute_command)",
    "floor": "raw unlocked floor (GET + SET EX)",
}


def run() -> Bench:
    rows = [run_sync(size) for size in (200, 4096)]
    rows += [asyncio.run(run_async(size)) for size in (200, 4096)]
    return Bench("Redis", LABELS, ("floor",), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
