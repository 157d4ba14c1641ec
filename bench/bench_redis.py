"""Session cycle on Redis: coatcheck against raw redis-py running the same scripts.

coatcheck sends two commands per cycle: EVALSHA of the read+lock script and EVALSHA of the
fenced write script that also releases the lock. The baseline sends exactly those two
scripts (the store's own sources, so they cannot drift) on a client built the same way
(same pool, timeouts, hiredis), with the same keys and arguments, re-encoding the same
record bytes with orjson, in the same process, on a session of its own. It runs them two
ways: redis-py's ``register_script`` objects, and ``execute_command("EVALSHA", ...)`` as the
store does; the floor is the faster of the two.
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


class Raw:
    """The hand-written equivalent: the store's two scripts, on a key pair of its own."""

    def __init__(self, url: str, key: str, client: Any) -> None:
        self.client = client
        self.keys = Keys(parse(url).prefix).pair(key)
        self.read_lock = client.register_script(READ_LOCK)
        self.write = client.register_script(WRITE)

    def lock_args(self) -> list[Any]:
        return [TOKEN, int(LEASE * 1000), repr(time.time())]

    def write_args(self, reply: list[bytes]) -> list[Any]:
        now = time.time()
        expires_at = now + IDLE
        ttl = math.ceil((expires_at - now) * 1000)
        return [bump(reply[0]), repr(expires_at), ttl, reply[2].decode(), TOKEN]

    def evalsha(self, sha: str, args: list[Any]) -> Any:
        return self.client.execute_command("EVALSHA", sha, 2, *self.keys, *args)

    def script(self) -> None:
        reply = self.read_lock(self.keys, self.lock_args())
        assert isinstance(reply, list)
        assert self.write(self.keys, self.write_args(reply)) > 0

    def direct(self) -> None:
        reply = self.evalsha(self.read_lock.sha, self.lock_args())
        assert isinstance(reply, list)
        assert self.evalsha(self.write.sha, self.write_args(reply)) > 0

    async def ascript(self) -> None:
        reply = await self.read_lock(self.keys, self.lock_args())
        assert isinstance(reply, list)
        assert await self.write(self.keys, self.write_args(reply)) > 0

    async def adirect(self) -> None:
        reply = await self.evalsha(self.read_lock.sha, self.lock_args())
        assert isinstance(reply, list)
        assert await self.evalsha(self.write.sha, self.write_args(reply)) > 0


def run_sync(size: int) -> Row:
    url = namespaced(URL, "prefix") + ":"
    try:
        sid, nbytes = seed(url, size)
        store = open_store(url)
        client = sync_client(parse(url))
        raw = Raw(url, storage_key(seed(url, size)[0]), client)  # sessions of their own
        variants = {
            "session": session_cycle(SessionManager(store, CONFIG), sid),
            "store": store_cycle(store, storage_key(seed(url, size)[0])),
            "script": raw.script,
            "direct": raw.direct,
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
        variants = {
            "session": async_session_cycle(AsyncSessionManager(store, CONFIG), sid),
            "store": async_store_cycle(store, storage_key(seed(url, size)[0])),
            "script": raw.ascript,
            "direct": raw.adirect,
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
    "script": "raw redis-py register_script",
    "direct": "raw redis-py execute_command",
}


def run() -> Bench:
    rows = [run_sync(size) for size in (200, 4096)]
    rows += [asyncio.run(run_async(size)) for size in (200, 4096)]
    return Bench("Redis", LABELS, ("script", "direct"), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
