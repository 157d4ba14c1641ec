# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The Redis store's I/O, written once for sync and asyncio code (see scripts/unasync.py).

Every session call is one round trip: a Lua script (:mod:`._scripts`), or a plain ``HMGET``
for an unlocked read. The redis-py client comes from :mod:`._clients`, the only module where
the two halves differ; URLs and options are :mod:`._config`'s.

A request waiting for a lock sleeps until the release is published (lock hand-over,
:meth:`RedisStore.wait_for_release`): :mod:`._listen` subscribes, and
:mod:`coatcheck.stores._handover` wakes the waiters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from redis.exceptions import NoScriptError

from .._handover import Handover
from ..base import LockRequest, Meta, ReadResult, Store, Stored, as_stored
from ._clients import ERRORS, ClientLock, sync_client, unavailable
from ._config import Settings
from ._listen import Feed
from ._scripts import (
    ANNOUNCE_SCRIPT,
    DESTROY_SCRIPT,
    READ_LOCK_SCRIPT,
    RELEASE_SCRIPT,
    TOUCH_SCRIPT,
    WRITE_SCRIPT,
    Keys,
    Script,
    channel,
    decode_read,
    decode_write,
    lease_left,
    queue_meta,
    read_lock_args,
    to_metas,
    touch_args,
    write_args,
)

_FIELDS = ("p", "e", "v")
_SCAN_BATCH = 500


class RedisStore(Store):
    """A Redis store (standalone, Sentinel or Cluster).

    The sync store is thread-safe: redis-py pools its connections, and its client is built
    once, under a lock. The asyncio store belongs to one event loop.
    """

    expires_itself = True  # a data key's TTL is its idle deadline

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self._redis: Any = None
        self._guard = ClientLock()
        self._handover = (
            Handover(self._feed, settings.where, wake_one=True) if settings.notify else None
        )

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
        except ERRORS as e:
            raise unavailable(self.settings, e, "open") from e

    def close(self) -> None:
        if self._handover is not None:
            self._handover.close()
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
        except ERRORS:
            pass  # closing a connection to a dead server: nothing left to release

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        now = self.clock()
        try:
            if lock is None:
                raw = self.client().hmget(self.keys.data(key), _FIELDS)
            else:
                handover = self._handover  # others of ours wait: keep the lock flagged
                waiting = handover is not None and handover.waiting(key)
                args = read_lock_args(lock, now, waiting)
                raw = self._eval(READ_LOCK_SCRIPT, self.keys.trio(key), args)
        except ERRORS as e:
            raise unavailable(self.settings, e, "read", key) from e
        return decode_read(raw, now)

    def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The records under ``keys``: one pipeline of the ``HMGET`` a plain read sends, so
        no lock is taken (admin). On Cluster, redis-py sends each node its share."""
        names = [self.keys.data(key) for key in keys]
        if not names:
            return []
        now = self.clock()
        try:
            pipe = self.client().pipeline(transaction=False)
            for name in names:
                pipe.hmget(name, _FIELDS)
            replies = pipe.execute()
        except ERRORS as e:
            raise unavailable(self.settings, e, "read") from e
        return [as_stored(decode_read(raw, now)) for raw in replies]

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        args = write_args(payload, expires_at, self.clock(), expect, token)
        try:
            code = self._eval(WRITE_SCRIPT, self.keys.trio(key), args)
        except ERRORS as e:
            raise unavailable(self.settings, e, "write", key) from e
        return decode_write(code)

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        args = touch_args(expires_at, self.clock(), token)
        try:
            self._eval(TOUCH_SCRIPT, self.keys.trio(key), args)
        except ERRORS as e:
            raise unavailable(self.settings, e, "update_timestamp", key) from e

    def release(self, key: str, token: str) -> None:
        try:
            self._eval(RELEASE_SCRIPT, self.keys.trio(key)[1:], [token])
        except ERRORS as e:
            raise unavailable(self.settings, e, "release", key) from e

    def destroy(self, key: str) -> None:
        try:
            self._eval(DESTROY_SCRIPT, self.keys.trio(key), [])  # one hash tag: one slot
        except ERRORS as e:
            raise unavailable(self.settings, e, "destroy", key) from e

    def wait_for_release(self, key: str, timeout: float) -> bool:
        """Sleep until the lock on ``key`` is released, its lease ends, or ``timeout`` passes.

        False at once when notices are off (``notify=false``) or their subscription is down:
        the caller polls instead. The session reads again after this returns, either way.
        """
        if self._handover is None:
            return False
        keys = self.keys.trio(key)[1:]

        def announce() -> float | None:
            return lease_left(self._eval(ANNOUNCE_SCRIPT, keys, []))

        return self._handover.wait(key, timeout, announce)

    def _feed(self) -> Feed:
        """The subscription to release notices, on a connection of its own."""
        s = self.settings
        return Feed(self.client()).open(channel(s.prefix), s.connect_timeout + s.socket_timeout)

    def gc(self) -> int:
        """Nothing to delete: Redis expires keys itself (a data key's TTL is its idle deadline).

        The server is still asked (``PING``), so GC against an unreachable Redis raises
        StoreUnavailable instead of reporting that nothing expired.
        """
        try:
            self.client().ping()
        except ERRORS as e:
            raise unavailable(self.settings, e, "gc") from e
        return 0

    def validate_id(self, key: str) -> bool:
        try:
            deadline = self.client().hget(self.keys.data(key), "e")
        except ERRORS as e:
            raise unavailable(self.settings, e, "validate_id", key) from e
        return deadline is not None and float(deadline) > self.clock()

    def count(self) -> int:
        return sum([1 for _ in self.scan()])

    def scan(self) -> Iterator[Meta]:
        """``SCAN`` (every master on Cluster), then one pipeline per batch of names."""
        try:
            client = self.client()
            batch: list[bytes] = []
            for name in client.scan_iter(match=self.keys.data_pattern, count=_SCAN_BATCH):
                batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    for meta in self._metas(client, batch):
                        yield meta
            for meta in self._metas(client, batch):
                yield meta
        except ERRORS as e:
            raise unavailable(self.settings, e, "scan") from e

    def _metas(self, client: Any, names: list[bytes]) -> list[Meta]:
        """The live records among ``names`` (emptied afterwards, ready for the next batch)."""
        if not names:
            return []
        pipe = client.pipeline(transaction=False)
        for name in names:
            queue_meta(pipe, name)
        replies = pipe.execute()
        metas = to_metas(self.keys, names, replies, self.clock())
        names.clear()
        return metas
