"""Session cycle on Redis: coatcheck against raw redis-py running the same scripts.

One cycle = load an existing session with the exclusive lock, increment a counter, save.
coatcheck sends two commands per cycle: EVALSHA of the read+lock script and EVALSHA of the
fenced write script that also releases the lock. The baseline sends exactly those two
scripts (the store's own sources, so they cannot drift) through redis-py's register_script
on a client built the same way (same pool, timeouts, hiredis), with the same keys and
arguments, decoding and re-encoding the same record bytes with orjson, in the same process.
Run: python -m bench.bench_redis (COATCHECK_TEST_REDIS overrides the server).
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.base import AsyncStore, LockRequest, ReadResult, Stored
from coatcheck.stores.redis import drop_namespace
from coatcheck.stores.redis_clients import async_client, sync_client
from coatcheck.stores.redis_config import parse
from coatcheck.stores.redis_scripts import READ_LOCK, WRITE, Keys

from .timing import Bench, Rounds, Row, compare, compare_async, cycles, report

URL = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
N = cycles(200)
CONFIG = Config(gc_probability=0, cookie_secure=True, touch_threshold=60)
TOKEN = "raw-token-raw-token-xx"


def data(size: int) -> dict[str, object]:
    return {"n": 0, "user": "ann", "pad": "x" * max(0, size - 40)}


def prefixed_url() -> str:
    sep = "&" if "?" in URL else "?"
    return f"{URL}{sep}prefix=bench_{uuid.uuid4().hex[:10]}:"


class Raw:
    """The hand-written equivalent: the store's two scripts, on a key pair of its own.

    ``script`` runs them the idiomatic redis-py way (``register_script`` objects);
    ``direct`` sends the same EVALSHA through ``execute_command``, as the store does.
    """

    def __init__(self, url: str, key: str, client: Any) -> None:
        self.client = client
        self.keys = Keys(parse(url).prefix).pair(key)
        self.read_lock = client.register_script(READ_LOCK)
        self.write = client.register_script(WRITE)

    def lock_args(self) -> list[Any]:
        return [TOKEN, 30_000, repr(time.time())]

    def write_args(self, reply: list[bytes]) -> list[Any]:
        head, _, body = reply[0].partition(b"\n")
        decoded = orjson.loads(body)
        decoded["n"] += 1
        payload = head + b"\n" + orjson.dumps(decoded)
        now = time.time()
        expires_at = now + 1440
        ttl = math.ceil((expires_at - now) * 1000)
        return [payload, repr(expires_at), ttl, reply[2].decode(), TOKEN]

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


def seed(url: str, size: int) -> tuple[str, int]:
    """A stored session of about ``size`` bytes; returns its id and record size."""
    store = open_store(url)
    s = SessionManager(store, CONFIG).start()
    s.update(data(size))
    s.write_close()
    stored = store.read(storage_key(s.id))
    store.close()
    return s.id, len(getattr(stored, "payload", b""))


def version(stored: ReadResult) -> int:
    assert isinstance(stored, Stored)
    return stored.version


def store_cycle(store: Any, key: str) -> Callable[[], Any]:
    """coatcheck's store alone doing the baseline's work: read+lock, bump, fenced write."""
    lock = LockRequest(TOKEN, 30)

    def bump(stored: ReadResult) -> tuple[str, bytes, float]:
        assert isinstance(stored, Stored)
        head, _, body = stored.payload.partition(b"\n")
        decoded = orjson.loads(body)
        decoded["n"] += 1
        return (key, head + b"\n" + orjson.dumps(decoded), time.time() + 1440)

    if isinstance(store, AsyncStore):

        async def acycle() -> None:
            got = await store.read(key, lock)
            await store.write(*bump(got), expect=version(got), token=TOKEN)

        return acycle

    def cycle() -> None:
        got = store.read(key, lock)
        store.write(*bump(got), expect=version(got), token=TOKEN)

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

        client = sync_client(parse(url))
        raw = Raw(url, storage_key(seed(url, size)[0]), client)  # a session of its own
        cycle = store_cycle(store, storage_key(seed(url, size)[0]))
        rounds = compare(
            {"session": session, "store": cycle, "script": raw.script, "direct": raw.direct}, N
        )
        client.close()
        client.connection_pool.disconnect()
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

        client = async_client(parse(url))
        raw = Raw(url, storage_key(seed(url, size)[0]), client)
        cycle = store_cycle(store, storage_key(seed(url, size)[0]))
        rounds = await compare_async(
            {"session": session, "store": cycle, "script": raw.ascript, "direct": raw.adirect}, N
        )
        await client.aclose()
        await client.connection_pool.disconnect()
        await store.close()
        return rounds, nbytes
    finally:
        drop_namespace(url)


LABELS = {
    "session": "coatcheck session",
    "store": "coatcheck store only",
    "script": "raw redis-py register_script",
    "direct": "raw redis-py execute_command",
}


def run() -> Bench:
    rows = []
    for size in (200, 4096):
        rounds, nbytes = run_sync(size)
        rows.append(Row("sync", nbytes, rounds))
    for size in (200, 4096):
        rounds, nbytes = asyncio.run(run_async(size))
        rows.append(Row("async", nbytes, rounds))
    return Bench("Redis", LABELS, ("script", "direct"), rows)


def main() -> int:
    report(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
