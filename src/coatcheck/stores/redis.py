"""The Redis store (``redis://``, ``rediss://``, ``redis+sentinel://``, ``redis+cluster://``).

PHP's phpredis session handler, done with leases and fencing: every operation is one round
trip (a Lua script, or a plain ``HMGET`` for an unlocked read), atomic on the server. Expiry
is Redis's own TTL, so :meth:`gc` has nothing to do. Key layout, scripts and the clock
decision are described in :mod:`coatcheck.stores.redis_scripts`; URLs and options in
:mod:`coatcheck.stores.redis_config`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import redis.exceptions
from redis.exceptions import NoScriptError

from .base import AsyncStore, LockRequest, Meta, ReadResult, Store
from .redis_clients import async_client, sync_client
from .redis_config import Settings, parse, unavailable
from .redis_scripts import (
    READ_LOCK_SCRIPT,
    RELEASE_SCRIPT,
    TOUCH_SCRIPT,
    WRITE_SCRIPT,
    Keys,
    Script,
    decode_read,
    decode_write,
    read_lock_args,
    touch_args,
    write_args,
)

_ERRORS = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
    OSError,
    asyncio.TimeoutError,
)
_FIELDS = ("p", "e", "v")
_SCAN_BATCH = 500


def open_sync(url: str) -> RedisStore:
    return RedisStore(parse(url))


def open_async(url: str) -> AsyncRedisStore:
    return AsyncRedisStore(parse(url))


def drop_namespace(url: str) -> None:
    """Delete every key under the URL's prefix (tests and benchmarks clean up with it)."""
    settings = parse(url)
    store = RedisStore(settings)
    try:
        client = store.client()
        batch: list[bytes] = []
        for name in client.scan_iter(match=store.keys.all_pattern, count=_SCAN_BATCH):
            batch.append(name)
            if len(batch) >= _SCAN_BATCH:
                _unlink(client, batch)
        _unlink(client, batch)
    except _ERRORS as e:
        raise unavailable(e, settings) from e
    finally:
        store.close()


def _unlink(client: Any, names: list[bytes]) -> None:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.unlink(name)  # one key per command: names may sit on different cluster slots
    pipe.execute()
    names.clear()


class RedisStore(Store):
    """A synchronous Redis store; thread-safe (redis-py pools its connections)."""

    scheme = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._redis: Any = None
        self._guard = threading.Lock()

    def client(self) -> Any:
        """The redis-py client, built on first use (RedisCluster connects as it is built)."""
        client = self._redis
        if client is None:
            with self._guard:
                if self._redis is None:
                    self._redis = sync_client(self.settings)
                client = self._redis
        return client

    def _eval(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, loading the script on NOSCRIPT (a restarted or failed-over server)."""
        client = self.client()
        try:
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(script.source)
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    def open(self) -> None:
        try:
            self.client()
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    def close(self) -> None:
        with self._guard:
            client, self._redis = self._redis, None
        if client is None:
            return
        pool = getattr(client, "connection_pool", None)
        try:
            client.close()
            if pool is not None:
                pool.disconnect()
                for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", []):
                    sentinel.close()
        except _ERRORS:
            pass  # closing a connection to a dead server: nothing left to release

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        now = time.time()
        try:
            client = self.client()
            if lock is None:
                raw = client.hmget(self.keys.data(key), _FIELDS)
            else:
                raw = self._eval(READ_LOCK_SCRIPT, self.keys.pair(key), read_lock_args(lock, now))
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e
        return decode_read(raw, now)

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        args = write_args(payload, expires_at, time.time(), expect, token)
        try:
            code = self._eval(WRITE_SCRIPT, self.keys.pair(key), args)
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e
        return decode_write(code)

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        args = touch_args(expires_at, time.time(), token)
        try:
            self._eval(TOUCH_SCRIPT, self.keys.pair(key), args)
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    def release(self, key: str, token: str) -> None:
        try:
            self._eval(RELEASE_SCRIPT, self.keys.pair(key)[1:], [token])
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    def destroy(self, key: str) -> None:
        try:
            self.client().delete(*self.keys.pair(key))  # one hash tag: one slot, one command
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    def gc(self) -> int:
        return 0  # Redis expires keys itself (the data key's TTL is the idle deadline)

    def validate_id(self, key: str) -> bool:
        try:
            deadline = self.client().hget(self.keys.data(key), "e")
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e
        return deadline is not None and float(deadline) > time.time()

    def count(self) -> int:
        return sum(1 for _ in self.scan())

    def scan(self) -> Iterator[Meta]:
        try:
            client = self.client()
            batch: list[bytes] = []
            for name in client.scan_iter(match=self.keys.data_pattern, count=_SCAN_BATCH):
                batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    yield from self._metas(client, batch)
            yield from self._metas(client, batch)
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    def _metas(self, client: Any, names: list[bytes]) -> Iterator[Meta]:
        pipe = client.pipeline(transaction=False)
        for name in names:
            _queue_meta(pipe, name)
        replies = pipe.execute()
        metas = _to_metas(self.keys, names, replies, time.time())
        names.clear()
        return iter(metas)


class AsyncRedisStore(AsyncStore):
    """The asyncio Redis store (``redis.asyncio``); use it from one event loop."""

    scheme = "redis"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._redis: Any = None

    def client(self) -> Any:
        """The redis.asyncio client, built on first use (it connects on the first command)."""
        client = self._redis
        if client is None:
            client = self._redis = async_client(self.settings)
        return client

    async def _eval(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        client = self.client()
        try:
            return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(script.source)
            return await client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    async def open(self) -> None:
        self.client()

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is None:
            return
        pool = getattr(client, "connection_pool", None)
        try:
            await client.aclose()
            if pool is not None:
                await pool.disconnect()
                for sentinel in getattr(getattr(pool, "sentinel_manager", None), "sentinels", []):
                    await sentinel.aclose()
        except _ERRORS:
            pass  # closing a connection to a dead server: nothing left to release

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        now = time.time()
        try:
            client = self.client()
            if lock is None:
                raw = await client.hmget(self.keys.data(key), _FIELDS)
            else:
                args = read_lock_args(lock, now)
                raw = await self._eval(READ_LOCK_SCRIPT, self.keys.pair(key), args)
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e
        return decode_read(raw, now)

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        args = write_args(payload, expires_at, time.time(), expect, token)
        try:
            code = await self._eval(WRITE_SCRIPT, self.keys.pair(key), args)
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e
        return decode_write(code)

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        args = touch_args(expires_at, time.time(), token)
        try:
            await self._eval(TOUCH_SCRIPT, self.keys.pair(key), args)
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    async def release(self, key: str, token: str) -> None:
        try:
            await self._eval(RELEASE_SCRIPT, self.keys.pair(key)[1:], [token])
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    async def destroy(self, key: str) -> None:
        try:
            await self.client().delete(*self.keys.pair(key))
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    async def gc(self) -> int:
        return 0  # Redis expires keys itself (the data key's TTL is the idle deadline)

    async def validate_id(self, key: str) -> bool:
        try:
            deadline = await self.client().hget(self.keys.data(key), "e")
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e
        return deadline is not None and float(deadline) > time.time()

    async def count(self) -> int:
        return sum([1 async for _ in self.scan()])

    async def scan(self) -> AsyncIterator[Meta]:
        try:
            client = self.client()
            batch: list[bytes] = []
            async for name in client.scan_iter(match=self.keys.data_pattern, count=_SCAN_BATCH):
                batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    for meta in await self._metas(client, batch):
                        yield meta
            for meta in await self._metas(client, batch):
                yield meta
        except _ERRORS as e:
            raise unavailable(e, self.settings) from e

    async def _metas(self, client: Any, names: list[bytes]) -> list[Meta]:
        pipe = client.pipeline(transaction=False)
        for name in names:
            _queue_meta(pipe, name)
        replies = await pipe.execute()
        metas = _to_metas(self.keys, names, replies, time.time())
        names.clear()
        return metas


def _queue_meta(pipe: Any, name: bytes) -> None:
    pipe.hget(name, "e")
    pipe.hstrlen(name, "p")
    pipe.exists(name + b":lock")


def _to_metas(keys: Keys, names: list[bytes], replies: list[Any], now: float) -> list[Meta]:
    metas = []
    for i, name in enumerate(names):
        deadline, size, locked = replies[3 * i : 3 * i + 3]
        if deadline is not None and float(deadline) > now:
            metas.append(Meta(keys.storage_key(name), float(deadline), int(size), bool(locked)))
    return metas
