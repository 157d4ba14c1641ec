# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The memcached store, PHP's ``memcached`` save handler: the source of both twins.

``_sync.py`` is generated from this file by scripts/unasync.py; edit this one. The driver
calls go through ``_sync_client.py`` (and its twin), whose two classes have the same methods.

Several servers share the items by rendezvous hashing; a server that is down makes its
sessions unavailable rather than moving them, because a lock item that moved could be held
twice. Each session is a record item and a lock item (:mod:`._format`).

A locked session cycle is two round trips. Read + lock: ``add`` of the lock item and
``gets`` of record and lock, sent together. Write + unlock: ``cas`` of the record with the
cas unique that read saw (kept in :mod:`._seen`), so nothing is applied unless the record is
still the one read, and a ``delete ... noreply`` of the lock, sent together. That only while
the lease has a second or more left (memcached has no compare-and-delete); closer to the end,
a ``cas`` to an already stale value releases the lock. When the ``cas`` is refused, the lock
is put back at once (``add``, same connection) and the careful path runs: ``gets`` of record
and lock, the lease and version checks, then ``cas``. So does any write this store object
did not read for.
docs/stores/memcached.md explains the remaining races. Listing (count, scan) uses
``lru_crawler metadump all``; gc is a no-op, memcached expires items.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Concatenate, ParamSpec, TypeVar

from ...errors import VersionMismatch
from ...locks import check_version, lease_lost
from .. import _url
from ..base import LOCKED, MUST_EXIST, LockRequest, Meta, ReadResult, Store, Stored
from ._client import Found, Router, ServerError
from ._config import Settings
from ._format import STALE, Keys, Lease, exptime, metadump_names, pack, unpack
from ._seen import Reads, Seen
from ._sync_client import Client

P = ParamSpec("P")
T = TypeVar("T")

_SAFE_DELETE_LEFT = 1.0  # seconds of lease left for a plain delete to be the release
_ATTEMPTS = 5  # cas retries when another writer got in between
_CRAWLS = 2  # metadump passes united per listing (one crawl can miss a moving item)
_CRAWLER_BUSY_WAIT = 10.0  # seconds to wait for another client's crawl to finish
_BATCH = 100  # records read back per gets while listing
# Commands that may run twice: repeated once on a fresh connection when a pooled one
# turns out dead (the server restarted). add and cas are not: they may have been applied.
_REPEATABLE = (
    Client.gets_many,
    Client.delete_many,
    Client.delete_unacknowledged,
    Client.metadump,
)


class MemcachedStore(Store):
    """Sessions in memcached (PHP: ``session.save_handler=memcached``)."""

    expires_itself = True  # items carry their TTL

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.router = Router(settings.servers)
        self._clients: list[Client | None] = [None] * len(settings.servers)
        self.reads = Reads()

    def close(self) -> None:
        for i in range(len(self._clients)):
            self._drop(i)

    # --- the contract -----------------------------------------------------------------------

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        """PHP's read: the record, taking the lock first when asked (``add`` + ``gets``, sent
        together: one round trip)."""
        data = self.keys.data(key)
        if lock is None:
            record, cas = _record(self._gets(data), data)
            if record is not None:
                self.reads.keep(key, None, Seen(cas, record.version, 0.0))
            return record
        item = self.keys.lock(key)
        for _ in range(_ATTEMPTS):
            now = self.clock()
            lease = Lease(lock.token, now + lock.lease)
            taken, found = self._add_gets(item, lease.encode(), exptime(lock.lease), data)
            record, cas = _record(found, data)
            if taken:
                if record is None or record.expires_at <= self.clock():
                    self._release_known(item, lease)
                else:
                    self.reads.keep(key, lock.token, Seen(cas, record.version, lease.until))
                return record  # expired records go to the engine, which discards it
            if record is None or record.expires_at <= now:
                return record
            current, lock_cas = _lease(found, item)
            if current is None:
                continue  # expired between our add and gets: add again
            if current.live(now) and not current.held_by(lock.token, now):
                return LOCKED
            if self._cas(item, lease.encode(), lock_cas, exptime(lock.lease)):
                self.reads.keep(key, lock.token, Seen(cas, record.version, lease.until))
                return record
        return LOCKED  # the lock kept changing hands: the session layer waits and retries

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        """PHP's write, fenced: one ``cas`` after this store's own read, else ``gets`` +
        ``cas``; then the lock is released."""
        seen = self.reads.take(key, token)
        if seen is not None and expect in (None, MUST_EXIST, seen.version):
            written = self._write_over(key, seen, payload, expires_at, token)
            if written is not None:
                return written
        data, item = self.keys.data(key), self.keys.lock(key)
        wanted = (data, item) if token is not None else (data,)
        for _ in range(_ATTEMPTS):
            found = self._gets(*wanted)
            now = self.clock()
            record, cas = _record(found, data)
            lease, _ = _lease(found, item)
            if token is not None and (
                record is None or lease is None or not lease.held_by(token, now)
            ):
                raise lease_lost()
            check_version(None if record is None else record.version, expect)
            version = (record.version if record else 0) + 1
            value = pack(payload, expires_at, version)
            ttl = exptime(expires_at - now)
            if self._cas(data, value, cas, ttl) if record else self._add(data, value, ttl):
                if token is not None and lease is not None:
                    self._release_known(item, lease)
                return version
        raise VersionMismatch("the session kept changing under concurrent writes")

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        """PHP's updateTimestamp: rewrite the header with the later deadline (gets + cas).

        ``touch`` alone would move memcached's TTL but not the deadline stored in the value,
        so the record is rewritten with the same version and payload; a cas that loses to a
        concurrent writer is retried, then given up (that writer set a deadline of its own).
        """
        data, item = self.keys.data(key), self.keys.lock(key)
        self.reads.take(key, token)  # the rewrite changes the cas unique
        found = self._gets(*((data, item) if token is not None else (data,)))
        lease, _ = _lease(found, item)
        for attempt in range(_ATTEMPTS):
            if attempt:
                found = self._gets(data)
            record, cas = _record(found, data)
            if record is None:
                break  # touching never resurrects a destroyed session
            deadline = max(record.expires_at, expires_at)
            value = pack(record.payload, deadline, record.version)
            if self._cas(data, value, cas, exptime(deadline - self.clock())):
                break
        if token is not None and lease is not None and lease.held_by(token, self.clock()):
            self._release_known(item, lease)

    def release(self, key: str, token: str) -> None:
        item = self.keys.lock(key)
        seen = self.reads.take(key, token)
        if seen is not None and seen.until - self.clock() >= _SAFE_DELETE_LEFT:
            self._delete_unacknowledged(item)  # our own read took it, and it still runs
            return
        lease, _ = _lease(self._gets(item), item)
        if lease is not None and lease.held_by(token, self.clock()):
            self._release_known(item, lease)

    def destroy(self, key: str) -> None:
        self._delete(self.keys.data(key), self.keys.lock(key))

    def gc(self) -> int:
        return 0  # memcached drops expired items itself

    def validate_id(self, key: str) -> bool:
        data = self.keys.data(key)
        record, _ = _record(self._gets(data), data)
        return record is not None and record.expires_at > self.clock()

    def count(self) -> int:
        return sum([1 for _ in self.scan()])

    def scan(self) -> Iterator[Meta]:
        """The live records among the names a metadump lists, read back in batches."""
        keys = [k for k in map(self.keys.storage_key, self.names()) if k is not None]
        for start in range(0, len(keys), _BATCH):
            batch = keys[start : start + _BATCH]
            found = self._gets(*map(self.keys.data, batch), *map(self.keys.lock, batch))
            now = self.clock()
            for k in batch:
                record, _ = _record(found, self.keys.data(k))
                if record is None or record.expires_at <= now:
                    continue
                lease, _ = _lease(found, self.keys.lock(k))
                locked = lease is not None and lease.live(now)
                yield Meta(k, record.expires_at, len(record.payload), locked)

    def names(self) -> list[str]:
        """Item names under this store's prefix, from ``lru_crawler metadump all``.

        A crawl is no snapshot: an item the LRU maintainer moves while the crawler passes
        can be missed, so each server is crawled twice and the names united.
        """
        out: set[str] = set()
        for i in range(len(self.settings.servers)):
            for _ in range(_CRAWLS):
                out.update(metadump_names(self._metadump(i), self.keys.ns))
        return sorted(out)

    # --- steps ------------------------------------------------------------------------------

    def _release_known(self, item: str, lease: Lease) -> None:
        """Drop a lock known to be ours (memcached has no compare-and-delete).

        With a second or more of lease left, a plain delete, not waited for: it could only
        remove another token's lock if ours expired and was taken over while the delete was
        in flight. Closer to the end, the lock is cas-replaced by a stale value instead,
        which never touches a lock taken over meanwhile; readers treat a stale value as free.
        """
        if lease.until - self.clock() >= _SAFE_DELETE_LEFT:
            self._delete_unacknowledged(item)
            return
        current, cas = _lease(self._gets(item), item)
        if current is not None and current.token == lease.token:
            self._cas(item, STALE, cas, 1)

    def _metadump(self, i: int) -> list[bytes]:
        """Server ``i``'s metadump lines, waiting while another client's crawl runs."""
        deadline = time.monotonic() + _CRAWLER_BUSY_WAIT
        while True:
            lines = self._call(i, Client.metadump)
            if not lines or lines[-1].startswith(b"key="):
                return lines
            if not lines[-1].startswith(b"BUSY"):
                refused = ServerError(
                    "memcached refused 'lru_crawler metadump' (needs memcached 1.4.31+ with "
                    "the LRU crawler enabled); count() and scan() are unavailable on it"
                )
                raise _url.unavailable(self.settings.where, refused, "metadump")
            if time.monotonic() > deadline:
                busy = ServerError("memcached's LRU crawler stayed busy; try again")
                raise _url.unavailable(self.settings.where, busy, "metadump")
            time.sleep(0.05)

    def _gets(self, *items: str) -> Found:
        found: Found = {}
        for i, group in self.router.group(items).items():
            found.update(self._call(i, Client.gets_many, group))
        return found

    def _add(self, item: str, value: bytes, ttl: int) -> bool:
        return self._call(self.router.index(item), Client.add, item, value, ttl)

    def _add_gets(self, item: str, value: bytes, ttl: int, *others: str) -> tuple[bool, Found]:
        """``add`` of ``item``, then ``gets`` of it and ``others``: one round trip for those
        on ``item``'s server, one more per other server."""
        i = self.router.index(item)
        groups = self.router.group(others)
        keys = [item, *groups.pop(i, [])]
        taken, found = self._call(i, Client.add_gets, item, value, ttl, keys)
        for j, group in groups.items():
            found.update(self._call(j, Client.gets_many, group))
        return taken, found

    def _cas(self, item: str, value: bytes, cas: int, ttl: int) -> bool:
        return self._call(self.router.index(item), Client.cas, item, value, cas, ttl)

    def _delete(self, *items: str) -> None:
        for i, group in self.router.group(items).items():
            self._call(i, Client.delete_many, group)

    def _write_over(
        self, key: str, seen: Seen, payload: bytes, expires_at: float, token: str | None
    ) -> int | None:
        """A write after this store's own read: one ``cas`` against the record that read saw,
        sent with the lock's release. The new version, or None for the careful path."""
        data, now = self.keys.data(key), self.clock()
        version = seen.version + 1
        value, ttl = pack(payload, expires_at, version), exptime(expires_at - now)
        if token is None:
            return version if self._cas(data, value, seen.cas, ttl) else None
        if seen.until - now < _SAFE_DELETE_LEFT:
            return None
        lease = Lease(token, seen.until)
        written, held = self._cas_release(data, value, seen.cas, ttl, self.keys.lock(key), lease)
        if written:
            return version
        if not held:
            raise lease_lost()  # our cas was refused, and the lock taken in that moment
        return None

    def _cas_release(
        self, data: str, value: bytes, cas: int, ttl: int, item: str, lease: Lease
    ) -> tuple[bool, bool]:
        """``cas`` of the record, then the lock ``item`` released (held by ``lease``, with
        a second or more left): (written, lock still held)."""
        i = self.router.index(data)
        if self.router.index(item) != i:  # two servers: two steps, the lock kept on a refusal
            if not self._cas(data, value, cas, ttl):
                return False, True
            self._delete_unacknowledged(item)
            return True, False
        relock, relock_ttl = lease.encode(), exptime(lease.until - self.clock())
        command = Client.cas_release
        return self._call(i, command, data, value, cas, ttl, item, relock, relock_ttl)

    def _delete_unacknowledged(self, item: str) -> None:
        self._call(self.router.index(item), Client.delete_unacknowledged, [item])

    # --- the driver -------------------------------------------------------------------------

    def _call(
        self,
        i: int,
        command: Callable[Concatenate[Client, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``command`` on server ``i``; on failure, drop that server's connections."""
        for attempt in (0, 1):
            try:
                return command(self._client(i), *args, **kwargs)
            except Client.ERRORS as e:
                self._drop(i)
                if attempt or command not in _REPEATABLE:
                    doing = command.__name__.removesuffix("_many")
                    raise _url.unavailable(self.settings.where, e, doing) from None
        raise AssertionError("unreachable")

    def _client(self, i: int) -> Client:
        client = self._clients[i]
        if client is None:
            client = self._clients[i] = Client(self.settings.servers[i], self.settings)
        return client

    def _drop(self, i: int) -> None:
        """Forget every pooled connection of server ``i``: the next call reconnects."""
        client, self._clients[i] = self._clients[i], None
        if client is not None:
            client.close()


def _record(found: Found, item: str) -> tuple[Stored | None, int]:
    if item not in found:
        return None, 0
    value, cas = found[item]
    return unpack(value), cas


def _lease(found: Found, item: str) -> tuple[Lease | None, int]:
    if item not in found:
        return None, 0
    value, cas = found[item]
    return Lease.decode(value), cas
