"""Memcached store, sync (pymemcache) and async (aiomcache): PHP's ``memcached`` save handler.

URL: ``memcached://host:port[,host:port...]?prefix=coatcheck:&timeout=1&connect_timeout=1
&pool_size=10``. Several servers share the keys by rendezvous hashing (pymemcache's
``RendezvousHash``, the same placement sync and async); a server that is down makes its
sessions unavailable rather than moving them, because moving a lock key to another server
would let two requests hold the same session's lock.

Each session has two items: the record (``<ns>s:<key>``: a 19-byte header with the version
and the exact ``expires_at``, then the payload) and its lock (``<ns>l:<key>``: ``"<lock_until>
<token>"``, taken with ``add``). Memcached keeps time in whole seconds and its clock ticks
once a second, so item TTLs are rounded up and padded by one second; the exact deadlines
live in the values and are checked on every read, so nothing expired is ever returned as
live. TTLs over 30 days are sent as absolute unix times, as memcached requires.

Writes are ``gets`` + ``cas`` (nothing is applied on a mismatch). Memcached has no
compare-and-delete, so a lock is released with a plain ``delete`` right after a ``gets``
showed our token with at least a second of lease left, and with a ``cas`` to an already
stale lock value otherwise; docs/stores/memcached.md explains the remaining race.

The admin operations (count/scan) list keys with ``lru_crawler metadump all``; GC is a
no-op (memcached expires items itself).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from operator import methodcaller
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

import aiomcache
from aiomcache.client import acquire
from aiomcache.exceptions import ClientException, ValidationException
from aiomcache.pool import Connection
from pymemcache.client.base import PooledClient  # type: ignore[import-untyped]
from pymemcache.client.rendezvous import RendezvousHash  # type: ignore[import-untyped]
from pymemcache.exceptions import (  # type: ignore[import-untyped]
    MemcacheClientError,
    MemcacheError,
)

from ..errors import CoatcheckError, ConfigError, LockLost, StoreUnavailable, VersionMismatch
from ..locks import check_version
from . import url_options
from .base import (
    LOCKED,
    AsyncStore,
    LockRequest,
    Meta,
    ReadResult,
    Store,
    Stored,
)

T = TypeVar("T")

DEFAULT_PORT = 11211
_DEFAULTS = {"prefix": "coatcheck:", "timeout": "1", "connect_timeout": "1", "pool_size": "10"}
_MAX_KEY = 250
_CLEAN = re.compile(r"[\x21-\x7e]*")  # printable ASCII without space: safe in a memcached key
_MAX_PREFIX = 1024
_HASHED_PREFIX_KEEP = 32
_RELATIVE_TTL_MAX = 30 * 24 * 3600  # larger exptimes are read as absolute unix times
_HEADER = struct.Struct(">2sBQd")  # magic, format, version, expires_at
_MAGIC = b"cc"
_FORMAT = 1
_SAFE_DELETE_LEFT = 1.0  # seconds of lease left for a plain delete to be the release
_ATTEMPTS = 5  # cas retries when another writer got in between
_METADUMP_BUSY_WAIT = 10.0
_CRAWLS = 2  # metadump passes united per listing (one crawl can miss a moving item)


# --- URL ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What a memcached store needs from its URL."""

    servers: tuple[tuple[str, int], ...]
    prefix: str
    timeout: float
    connect_timeout: float
    pool_size: int


_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\],]+))(?::(?P<port>\d+))?")


def parse(url: str) -> Settings:
    """Parse a ``memcached://`` URL; raise ConfigError on anything unknown or malformed."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "memcached":
        raise ConfigError("a memcached store URL starts with memcached://")
    netloc = parts.netloc
    if "@" in netloc:
        raise ConfigError("memcached URLs take no user or password (the text protocol has none)")
    if parts.path not in ("", "/"):
        raise ConfigError("a memcached URL has no path: memcached://host:port[,host:port]")
    servers = tuple(_server(item) for item in (netloc or "127.0.0.1").split(","))
    options = {**_DEFAULTS, **url_options(parts.query)}
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown memcached URL option(s): {', '.join(unknown)}")
    prefix = options["prefix"]
    if len(prefix) > _MAX_PREFIX:
        raise ConfigError(f"memcached prefix is longer than {_MAX_PREFIX} characters")
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ConfigError("memcached prefix is not valid UTF-8 text") from e
    timeout = _positive(options, "timeout")
    connect_timeout = _positive(options, "connect_timeout")
    pool_size = int(_positive(options, "pool_size"))
    return Settings(servers, prefix, timeout, connect_timeout, pool_size)


def _server(item: str) -> tuple[str, int]:
    m = _HOST.fullmatch(item.strip())
    if m is None:
        raise ConfigError("memcached URL: each server is host[:port] or [v6addr][:port]")
    host = m.group("v6") or unquote(m.group("name"))
    port = int(m.group("port") or DEFAULT_PORT)
    if not 0 < port < 65536:
        raise ConfigError("memcached URL: port out of range")
    return host, port


def _positive(options: dict[str, str], name: str) -> float:
    try:
        value = float(options[name])
    except ValueError:
        raise ConfigError(f"memcached URL option {name} must be a number") from None
    if not value > 0 or math.isinf(value):
        raise ConfigError(f"memcached URL option {name} must be positive")
    return value


# --- keys and values ------------------------------------------------------------------------


class Keys:
    """Memcached keys for one prefix: always valid, at most 250 bytes, never the raw id.

    A prefix that is printable ASCII without spaces and short enough is used as it is. Any
    other prefix (long, spaces, control characters, non-ASCII) becomes its first safe
    characters plus a SHA-256 of the whole prefix, so every key has the same readable start
    and a fixed length. A storage key that would not fit is hashed the same way.
    """

    def __init__(self, prefix: str) -> None:
        if _CLEAN.fullmatch(prefix) and len(prefix) <= 120:
            self.ns = prefix
        else:
            safe = "".join(c if _CLEAN.fullmatch(c) else "_" for c in prefix)
            digest = hashlib.sha256(prefix.encode("utf-8")).hexdigest()[:32]
            self.ns = f"{safe[:_HASHED_PREFIX_KEEP]}~{digest}:"

    def data(self, key: str) -> str:
        return self._make("s:", key)

    def lock(self, key: str) -> str:
        return self._make("l:", key)

    def _make(self, kind: str, key: str) -> str:
        whole = self.ns + kind + key
        if _CLEAN.fullmatch(key) and len(whole) <= _MAX_KEY:
            return whole
        return self.ns + kind + "#" + hashlib.sha256(key.encode("utf-8")).hexdigest()

    def storage_key(self, item: str) -> str | None:
        """The storage key of a record item's name, or None for anything else."""
        head = self.ns + "s:"
        if not item.startswith(head) or item.startswith(head + "#"):
            return None
        return item[len(head) :]


def pack(payload: bytes, expires_at: float, version: int) -> bytes:
    return _HEADER.pack(_MAGIC, _FORMAT, version, expires_at) + payload


def unpack(value: bytes) -> Stored:
    if len(value) < _HEADER.size or value[:2] != _MAGIC or value[2] != _FORMAT:
        raise StoreUnavailable("memcached returned a session record coatcheck did not write")
    _, _, version, expires_at = _HEADER.unpack_from(value)
    return Stored(value[_HEADER.size :], expires_at, version)


@dataclass(frozen=True, slots=True)
class Lease:
    token: str
    until: float

    def encode(self) -> bytes:
        return f"{self.until!r} {self.token}".encode()

    @staticmethod
    def decode(value: bytes) -> Lease:
        until, _, token = value.decode("ascii", "replace").partition(" ")
        try:
            return Lease(token, float(until))
        except ValueError:
            return Lease("", 0.0)  # unreadable: treat as stale, it can be taken over

    def live(self, now: float) -> bool:
        return self.until > now

    def held_by(self, token: str, now: float) -> bool:
        return self.live(now) and hmac.compare_digest(self.token.encode(), token.encode())


_STALE = Lease("", 0.0).encode()  # what a near-expiry release leaves for its last second


def exptime(deadline: float, now: float) -> int:
    """Memcached's exptime for an absolute deadline: whole seconds, rounded up, +1 s of slack.

    Relative up to 30 days; beyond that memcached reads the number as a unix time.
    """
    ttl = max(1, math.ceil(deadline - now)) + 1
    if ttl > _RELATIVE_TTL_MAX:
        return math.ceil(now) + ttl
    return ttl


# --- the contract as steps: one implementation driven by a sync and an async executor --------


@dataclass(frozen=True, slots=True)
class Gets:
    """Fetch items with their cas uniques: ``{key: (value, cas)}`` for the ones present."""

    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Add:
    key: str
    value: bytes
    exptime: int


@dataclass(frozen=True, slots=True)
class Cas:
    key: str
    value: bytes
    cas: int
    exptime: int


@dataclass(frozen=True, slots=True)
class Delete:
    keys: tuple[str, ...]


Op = Gets | Add | Cas | Delete
Found = dict[str, tuple[bytes, int]]
Flow = Generator[Op, Any, T]


def _gets(*keys: str) -> Flow[Found]:
    return cast(Found, (yield Gets(keys)))


def _stored(found: Found, item: str) -> tuple[Stored | None, int]:
    if item not in found:
        return None, 0
    value, cas = found[item]
    return unpack(value), cas


def _lease(found: Found, item: str) -> tuple[Lease | None, int]:
    if item not in found:
        return None, 0
    value, cas = found[item]
    return Lease.decode(value), cas


def read_flow(keys: Keys, key: str, lock: LockRequest | None) -> Flow[ReadResult]:
    """PHP's read: the record, taking the lock first when asked (``add``, then ``get``)."""
    data = keys.data(key)
    if lock is None:
        record, _ = _stored((yield from _gets(data)), data)
        return record
    item = keys.lock(key)
    for _ in range(_ATTEMPTS):
        now = time.time()
        lease = Lease(lock.token, now + lock.lease)
        if (yield Add(item, lease.encode(), exptime(lease.until, now))):
            record, _ = _stored((yield from _gets(data)), data)
            if record is None or record.expires_at <= time.time():
                yield from _release_known(item, lease, time.time())
            return record  # expired records go to the engine, which discards them
        found = yield from _gets(data, item)
        record, _ = _stored(found, data)
        if record is None or record.expires_at <= now:
            return record
        current, cas = _lease(found, item)
        if current is None:
            continue  # expired between our add and gets: add again
        if current.live(now) and not current.held_by(lock.token, now):
            return LOCKED
        if (yield Cas(item, lease.encode(), cas, exptime(lease.until, now))):
            return record
    return LOCKED  # the lock kept changing hands: the session layer waits and retries


def write_flow(
    keys: Keys,
    key: str,
    payload: bytes,
    expires_at: float,
    expect: int | None,
    token: str | None,
) -> Flow[int]:
    """PHP's write, fenced: gets + cas, then the lock is released."""
    data, item = keys.data(key), keys.lock(key)
    wanted = (data, item) if token is not None else (data,)
    for _ in range(_ATTEMPTS):
        found = yield from _gets(*wanted)
        now = time.time()
        record, cas = _stored(found, data)
        lease, _ = _lease(found, item)
        if token is not None and (record is None or lease is None or not lease.held_by(token, now)):
            raise LockLost("the session lock's lease expired before the write; nothing was written")
        check_version(None if record is None else record.version, expect)
        version = (record.version if record else 0) + 1
        value = pack(payload, expires_at, version)
        ttl = exptime(expires_at, now)
        done = yield (Cas(data, value, cas, ttl) if record else Add(data, value, ttl))
        if done:
            if token is not None and lease is not None:
                yield from _release_known(item, lease, time.time())
            return version
    raise VersionMismatch("the session kept changing under concurrent writes")


def touch_flow(keys: Keys, key: str, expires_at: float, token: str | None) -> Flow[None]:
    """PHP's updateTimestamp: rewrite the header with the later deadline (gets + cas).

    ``touch`` alone would move memcached's TTL but not the deadline stored in the value, so
    the record is rewritten with the same version and payload; a cas that loses to a
    concurrent writer is retried, then given up (that writer set a deadline of its own).
    """
    data, item = keys.data(key), keys.lock(key)
    wanted = (data, item) if token is not None else (data,)
    found = yield from _gets(*wanted)
    lease, _ = _lease(found, item)
    for attempt in range(_ATTEMPTS):
        if attempt:
            found = yield from _gets(data)
        record, cas = _stored(found, data)
        if record is None:
            break  # touching never resurrects a destroyed session
        deadline = max(record.expires_at, expires_at)
        value = pack(record.payload, deadline, record.version)
        if (yield Cas(data, value, cas, exptime(deadline, time.time()))):
            break
    if token is not None and lease is not None and lease.held_by(token, time.time()):
        yield from _release_known(item, lease, time.time())


def release_flow(keys: Keys, key: str, token: str) -> Flow[None]:
    item = keys.lock(key)
    lease, _ = _lease((yield from _gets(item)), item)
    if lease is not None and lease.held_by(token, time.time()):
        yield from _release_known(item, lease, time.time())


def _release_known(item: str, lease: Lease, now: float) -> Flow[None]:
    """Drop a lock a ``gets`` just showed as ours (memcached has no compare-and-delete).

    With a second or more of lease left, a plain delete: it could only remove another
    token's lock if ours expired and was taken over while the delete was in flight. Closer
    to the end, the lock is cas-replaced by a stale value instead, which never touches a
    lock taken over meanwhile; readers treat a stale value as free and take it with cas.
    """
    if lease.until - now >= _SAFE_DELETE_LEFT:
        yield Delete((item,))
        return
    found = yield from _gets(item)
    current, cas = _lease(found, item)
    if current is not None and current.token == lease.token:
        yield Cas(item, _STALE, cas, 1)


def validate_flow(keys: Keys, key: str) -> Flow[bool]:
    data = keys.data(key)
    record, _ = _stored((yield from _gets(data)), data)
    return record is not None and record.expires_at > time.time()


def metas_flow(keys: Keys, items: list[str], now: float) -> Flow[list[Meta]]:
    """Metadata of the live records among ``items`` (names from a metadump)."""
    out: list[Meta] = []
    storage = [k for k in (keys.storage_key(i) for i in items) if k is not None]
    for start in range(0, len(storage), 100):
        batch = storage[start : start + 100]
        wanted = [keys.data(k) for k in batch] + [keys.lock(k) for k in batch]
        found = yield from _gets(*wanted)
        for k in batch:
            record, _ = _stored(found, keys.data(k))
            if record is None or record.expires_at <= now:
                continue
            lease, _ = _lease(found, keys.lock(k))
            locked = lease is not None and lease.live(now)
            out.append(Meta(k, record.expires_at, len(record.payload), locked))
    return out


# --- metadump -------------------------------------------------------------------------------


_METADUMP = b"lru_crawler metadump all\r\n"


def metadump_names(lines: Iterable[bytes], ns: str) -> list[str]:
    """Item names under ``ns`` from ``lru_crawler metadump`` lines (``key=<urlencoded> ...``)."""
    out: list[str] = []
    for line in lines:
        if not line.startswith(b"key="):
            continue
        name = unquote(line[4:].split(b" ", 1)[0].decode("ascii", "replace"))
        if name.startswith(ns):
            out.append(name)
    return out


def _metadump_error(line: bytes) -> StoreUnavailable | None:
    if line.startswith(b"BUSY"):
        return None  # another crawl is running: the caller waits and asks again
    return StoreUnavailable(
        "memcached refused 'lru_crawler metadump' (needs memcached 1.4.31+ with the LRU "
        "crawler enabled); count() and scan() are unavailable on this server"
    )


def _sync_metadump(host: str, port: int, timeout: float) -> list[bytes]:
    deadline = time.monotonic() + _METADUMP_BUSY_WAIT
    while True:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_METADUMP)
            reader = sock.makefile("rb")
            lines: list[bytes] = []
            for line in reader:
                if line == b"END\r\n":
                    return lines
                if not line.startswith(b"key="):
                    error = _metadump_error(line)
                    if error is not None:
                        raise error
                    break
                lines.append(line)
            else:
                raise StoreUnavailable("memcached closed the connection during a metadump")
        if time.monotonic() > deadline:
            raise StoreUnavailable("memcached's LRU crawler stayed busy; try count() again")
        time.sleep(0.05)


# --- sync -----------------------------------------------------------------------------------


class _Router:
    """Which server holds an item: rendezvous hashing over ``host:port`` names."""

    def __init__(self, servers: tuple[tuple[str, int], ...]) -> None:
        self.names = [f"{h}:{p}" for h, p in servers]
        self.hasher = RendezvousHash(list(self.names))

    def index(self, item: str) -> int:
        if len(self.names) == 1:
            return 0
        return self.names.index(self.hasher.get_node(item))

    def group(self, items: Iterable[str]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for item in items:
            out.setdefault(self.index(item), []).append(item)
        return out


_SYNC_ERRORS = (MemcacheError, OSError)


def _unavailable(settings: Settings, e: BaseException) -> StoreUnavailable:
    where = ", ".join(f"{h}:{p}" for h, p in settings.servers)
    return StoreUnavailable(f"memcached at {where} is unavailable ({type(e).__name__})")


class MemcachedStore(Store):
    """Sessions in memcached through pymemcache (PHP: ``session.save_handler=memcached``)."""

    scheme = "memcached"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.router = _Router(settings.servers)
        self._clients: list[PooledClient | None] = [None] * len(settings.servers)

    def _client(self, i: int) -> PooledClient:
        client = self._clients[i]
        if client is None:
            s = self.settings
            client = PooledClient(
                s.servers[i],
                connect_timeout=s.connect_timeout,
                timeout=s.timeout,
                no_delay=True,
                max_pool_size=s.pool_size,
                default_noreply=False,
                allow_unicode_keys=False,
            )
            self._clients[i] = client
        return client

    def _drop(self, i: int) -> None:
        """Forget every pooled socket of a server that failed: the next call reconnects."""
        client, self._clients[i] = self._clients[i], None
        if client is not None:
            with suppress(Exception):  # closing a broken pool must not mask the error
                client.close()

    def _on(self, item: str, call: Callable[[PooledClient], T], retry: bool = False) -> T:
        i = self.router.index(item)
        return self._with(i, call, retry)

    def _with(self, i: int, call: Callable[[PooledClient], T], retry: bool = False) -> T:
        for attempt in (0, 1):
            try:
                return call(self._client(i))
            except MemcacheClientError as e:
                raise CoatcheckError(
                    f"memcached client refused a command ({type(e).__name__})"
                ) from None
            except _SYNC_ERRORS as e:
                self._drop(i)
                if not retry or attempt:  # only reads are repeated, on fresh connections
                    raise _unavailable(self.settings, e) from None
        raise AssertionError("unreachable")

    def _execute(self, op: Op) -> object:
        if isinstance(op, Gets):
            found: Found = {}
            for i, items in self.router.group(op.keys).items():
                got = self._with(i, methodcaller("gets_many", items), retry=True)
                for k, (value, cas) in got.items():
                    found[k] = (bytes(value), int(cas))
            return found
        if isinstance(op, Add):
            return self._on(op.key, methodcaller("add", op.key, op.value, op.exptime, False))
        if isinstance(op, Cas):
            cas = methodcaller("cas", op.key, op.value, op.cas, op.exptime, False)
            return bool(self._on(op.key, cas))
        for i, items in self.router.group(op.keys).items():
            self._with(i, methodcaller("delete_many", items, False), retry=True)
        return None

    def _run(self, flow: Flow[T]) -> T:
        try:
            op = next(flow)
            while True:
                op = flow.send(self._execute(op))
        except StopIteration as stop:
            return cast(T, stop.value)

    def close(self) -> None:
        for i in range(len(self._clients)):
            self._drop(i)

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return self._run(read_flow(self.keys, key, lock))

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        return self._run(write_flow(self.keys, key, payload, expires_at, expect, token))

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        self._run(touch_flow(self.keys, key, expires_at, token))

    def release(self, key: str, token: str) -> None:
        self._run(release_flow(self.keys, key, token))

    def destroy(self, key: str) -> None:
        self._execute(Delete((self.keys.data(key), self.keys.lock(key))))

    def gc(self) -> int:
        return 0  # memcached drops expired items itself

    def validate_id(self, key: str) -> bool:
        return self._run(validate_flow(self.keys, key))

    def names(self) -> list[str]:
        """Item names under this store's prefix, from ``lru_crawler metadump all``.

        A crawl is no snapshot: an item the LRU maintainer moves while the crawler passes
        can be missed, so each server is crawled twice and the names united.
        """
        out: set[str] = set()
        for host, port in self.settings.servers:
            for _ in range(_CRAWLS):
                try:
                    lines = _sync_metadump(host, port, self.settings.timeout)
                except OSError as e:
                    raise _unavailable(self.settings, e) from None
                out.update(metadump_names(lines, self.keys.ns))
        return sorted(out)

    def count(self) -> int:
        return sum(1 for _ in self.scan())

    def scan(self) -> Iterator[Meta]:
        now = time.time()
        return iter(self._run(metas_flow(self.keys, self.names(), now)))


# --- async ----------------------------------------------------------------------------------


class _AioClient(aiomcache.Client):
    """aiomcache with multi-key ``gets`` and a reply reader that fails on a closed socket.

    aiomcache 0.8's ``_execute_simple_command`` loops on ``readline()`` until it sees CRLF;
    on a connection the server closed, ``readline()`` returns b"" at once forever, which
    would spin the event loop. Here a short line is an error, so the pool drops the socket.
    """

    async def _execute_simple_command(self, conn: Connection, raw_command: bytes) -> bytes:
        conn.writer.write(raw_command)
        await conn.writer.drain()
        line = await conn.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionResetError("memcached closed the connection")
        return line[:-2]

    @acquire
    async def gets_many(self, conn: Connection, *keys: bytes) -> tuple[dict[bytes, bytes], Any]:
        return await self._multi_get(conn, *keys, with_cas=True)

    @acquire
    async def metadump(self, conn: Connection) -> list[bytes] | None:
        """Lines of ``lru_crawler metadump all``; None while another crawl is busy."""
        conn.writer.write(_METADUMP)
        await conn.writer.drain()
        lines: list[bytes] = []
        while True:
            line = await conn.reader.readline()
            if line == b"END\r\n":
                return lines
            if not line.endswith(b"\n"):  # metadump lines end in a bare LF
                raise ConnectionResetError("memcached closed the connection during a metadump")
            if not line.startswith(b"key="):
                error = _metadump_error(line)
                if error is not None:
                    raise error
                return None
            lines.append(line)


_ASYNC_ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ClientException)


class AsyncMemcachedStore(AsyncStore):
    """The asyncio twin of :class:`MemcachedStore`, through aiomcache."""

    scheme = "memcached"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.prefix)
        self.router = _Router(settings.servers)
        self._clients: list[_AioClient | None] = [None] * len(settings.servers)
        # aiomcache has no socket timeouts: every call runs under one deadline instead.
        self._deadline = settings.connect_timeout + settings.timeout

    def _client(self, i: int) -> _AioClient:
        client = self._clients[i]
        if client is None:
            host, port = self.settings.servers[i]
            client = _AioClient(host, port, pool_size=self.settings.pool_size, pool_minsize=1)
            self._clients[i] = client
        return client

    async def _drop(self, i: int) -> None:
        client, self._clients[i] = self._clients[i], None
        if client is not None:
            with suppress(Exception):  # closing a broken pool must not mask the error
                await client.close()

    async def _with(self, i: int, call: Callable[[_AioClient], Any], retry: bool = False) -> Any:
        for attempt in (0, 1):
            try:
                async with asyncio.timeout(self._deadline):
                    return await call(self._client(i))
            except ValidationException as e:
                raise CoatcheckError(
                    f"memcached client refused a key ({type(e).__name__})"
                ) from None
            except (*_ASYNC_ERRORS, StoreUnavailable) as e:
                # A cancelled call puts its half-read socket back in the pool: drop them all.
                await self._drop(i)
                if isinstance(e, StoreUnavailable):
                    raise
                if not retry or attempt:
                    raise _unavailable(self.settings, e) from None
        raise AssertionError("unreachable")

    async def _execute(self, op: Op) -> object:
        if isinstance(op, Gets):
            groups = self.router.group(op.keys)
            replies = await _all(
                [
                    self._with(i, methodcaller("gets_many", *_b(items)), retry=True)
                    for i, items in groups.items()
                ]
            )
            found: Found = {}
            for values, cas in replies:
                for k, value in values.items():
                    found[k.decode()] = (value, int(cas[k]))
            return found
        i = self.router.index(op.keys[0] if isinstance(op, Delete) else op.key)
        if isinstance(op, Add):
            return await self._with(i, methodcaller("add", op.key.encode(), op.value, op.exptime))
        if isinstance(op, Cas):
            cas = methodcaller("cas", op.key.encode(), op.value, op.cas, op.exptime)
            return await self._with(i, cas)
        await _all(
            [
                self._with(self.router.index(k), methodcaller("delete", k.encode()), True)
                for k in op.keys
            ]
        )
        return None

    async def _run(self, flow: Flow[T]) -> T:
        try:
            op = next(flow)
            while True:
                op = flow.send(await self._execute(op))
        except StopIteration as stop:
            return cast(T, stop.value)

    async def close(self) -> None:
        for i in range(len(self._clients)):
            await self._drop(i)

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return await self._run(read_flow(self.keys, key, lock))

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        return await self._run(write_flow(self.keys, key, payload, expires_at, expect, token))

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        await self._run(touch_flow(self.keys, key, expires_at, token))

    async def release(self, key: str, token: str) -> None:
        await self._run(release_flow(self.keys, key, token))

    async def destroy(self, key: str) -> None:
        await self._execute(Delete((self.keys.data(key), self.keys.lock(key))))

    async def gc(self) -> int:
        return 0

    async def validate_id(self, key: str) -> bool:
        return await self._run(validate_flow(self.keys, key))

    async def names(self) -> list[str]:
        """Item names under this store's prefix: see :meth:`MemcachedStore.names`."""
        out: set[str] = set()
        for i in range(len(self.settings.servers)):
            for _ in range(_CRAWLS):
                out.update(metadump_names(await self._metadump(i), self.keys.ns))
        return sorted(out)

    async def _metadump(self, i: int) -> list[bytes]:
        deadline = time.monotonic() + _METADUMP_BUSY_WAIT
        while True:
            lines: list[bytes] | None = await self._with(i, methodcaller("metadump"))
            if lines is not None:
                return lines
            if time.monotonic() > deadline:
                raise StoreUnavailable("memcached's LRU crawler stayed busy; try again")
            await asyncio.sleep(0.05)

    async def count(self) -> int:
        return sum([1 async for _ in self.scan()])

    async def scan(self) -> AsyncIterator[Meta]:
        now = time.time()
        for meta in await self._run(metas_flow(self.keys, await self.names(), now)):
            yield meta


async def _all(calls: list[Awaitable[T]]) -> list[T]:
    """Await ``calls`` concurrently; a single one directly (gather would wrap it in a task)."""
    if len(calls) == 1:
        return [await calls[0]]
    return list(await asyncio.gather(*calls))


def _b(items: list[str]) -> list[bytes]:
    return [item.encode() for item in items]


# --- entry points ---------------------------------------------------------------------------


def open_sync(url: str) -> MemcachedStore:
    return MemcachedStore(parse(url))


def open_async(url: str) -> AsyncMemcachedStore:
    return AsyncMemcachedStore(parse(url))


def drop_namespace(url: str) -> None:
    """Delete every item under the URL's prefix (tests and benchmarks clean up with it).

    Lists keys with ``lru_crawler metadump`` and deletes them one server at a time; never
    ``flush_all``, which would wipe every other user of a shared server.
    """
    store = open_sync(url)
    try:
        empty = 0
        for _ in range(6):  # a crawl can miss an item in use: stop after two empty listings
            names = store.names()
            empty = 0 if names else empty + 1
            if empty == 2:
                return
            for start in range(0, len(names), 200):
                store._execute(Delete(tuple(names[start : start + 200])))
    finally:
        store.close()
