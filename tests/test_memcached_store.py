"""What is memcached-specific about the memcached store (the conformance suite covers the contract).

The shared server is 127.0.0.1:11211 (from .ci/memcached.sh). The restart test runs a
memcached of its own on a spare loopback port, so killing it never disturbs anyone else.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote, unquote

import pytest
from pymemcache.client.base import Client  # type: ignore[import-untyped]

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.cli import main as cli
from coatcheck.errors import ConfigError, LockLost, StoreUnavailable, VersionMismatch
from coatcheck.ids import storage_key
from coatcheck.stores.base import LOCKED, MUST_EXIST, LockRequest, Stored
from coatcheck.stores.memcached import AsyncMemcachedStore, MemcachedStore
from coatcheck.stores.memcached._async_client import AsyncClient
from coatcheck.stores.memcached._config import parse
from coatcheck.stores.memcached._format import Keys, exptime
from coatcheck.stores.memcached._seen import LIMIT, Reads, Seen
from coatcheck.stores.memcached._sync_client import Client as SyncClient

from .conftest import aw
from .services import MEMCACHED_URL, in_ci, reachable, require
from .support.memcached import drop_namespace

HOST, PORT = parse(MEMCACHED_URL).servers[0]
KEY = "ab" * 32  # a storage key: 64 hex characters
DAY = 24 * 3600.0


def config(**options: Any) -> Config:
    return Config(**{"cookie_secure": True, "gc_probability": 0, **options})


def url_with(prefix: str, base: str = MEMCACHED_URL) -> str:
    return f"{base}?prefix={quote(prefix, safe='')}"


@pytest.fixture
def url() -> Iterator[str]:
    require(HOST, PORT, "memcached")
    u = url_with(f"cct_{uuid.uuid4().hex[:12]}:")
    yield u
    drop_namespace(u)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def store_for(url: str, mode: str) -> MemcachedStore | AsyncMemcachedStore:
    store = open_async_store(url) if mode == "async" else open_store(url)
    assert isinstance(store, MemcachedStore | AsyncMemcachedStore)
    return store


def raw() -> Any:
    return Client((HOST, PORT), default_noreply=False)


def metadump() -> dict[str, dict[str, str]]:
    """Every item on the shared server: name -> metadump fields (exp, size, ...)."""
    with socket.create_connection((HOST, PORT), timeout=5) as sock:
        for _ in range(100):
            sock.sendall(b"lru_crawler metadump all\r\n")
            data = b""
            while not data.endswith(b"END\r\n") and not data.startswith(b"BUSY"):
                data += sock.recv(65536)
            if not data.startswith(b"BUSY"):
                break
            while not data.endswith(b"\r\n"):
                data += sock.recv(65536)
            time.sleep(0.05)
    out: dict[str, dict[str, str]] = {}
    for line in data.decode().splitlines():
        if line.startswith("key="):
            fields = dict(f.split("=", 1) for f in line.split(" "))
            out[fields["key"]] = fields
    return {unquote(k): v for k, v in out.items()}


# --- keys ------------------------------------------------------------------------------------

ODD_PREFIXES = [
    "p" * 300,  # too long to keep
    "has space:",
    "ctl\x01\x7f\n:",
    "préfixe-ünïcode:",
    "",
]


@pytest.mark.parametrize("prefix", ODD_PREFIXES, ids=["long", "space", "control", "utf8", "empty"])
async def test_odd_prefixes_give_valid_fixed_length_keys(prefix: str, mode: str) -> None:
    require(HOST, PORT, "memcached")
    keys = Keys(prefix)
    names = [keys.data(KEY), keys.lock(KEY)]
    for name in names:
        assert len(name.encode()) <= 250
        assert all(0x21 <= ord(c) <= 0x7E for c in name), name
    if prefix:  # a hashed prefix keeps a readable start
        assert keys.ns[:3] == "".join(c if 0x21 <= ord(c) <= 0x7E else "_" for c in prefix[:3])
    assert len(Keys(prefix + "a").data(KEY)) == len(Keys(prefix + "b").data(KEY))
    assert Keys(prefix + "a").data(KEY) != Keys(prefix + "b").data(KEY)
    # and the server takes them: a real round trip under that prefix
    u = url_with(prefix + uuid.uuid4().hex[:8])
    store = store_for(u, mode)
    try:
        version = await aw(store.write(KEY, b"payload", time.time() + 60))
        got = await aw(store.read(KEY))
        assert isinstance(got, Stored)
        assert (got.payload, got.version) == (b"payload", version)
        assert await aw(store.count()) == 1
        # deleted by its name: the LRU crawler that drop_namespace lists by may not show an
        # item written a moment ago (it flaked in CI)
        await aw(store.destroy(KEY))
    finally:
        await aw(store.close())
        drop_namespace(u)
    assert await aw(store_for(u, mode).validate_id(KEY)) is False


BAD_KEYS = ["AB" * 32, "ab" * 31, "ab" * 33, "x" * 64, "a b\x00" + "a" * 60, ""]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=["upper", "short", "long", "not-hex", "ctl", "empty"])
async def test_only_storage_keys_are_accepted(bad: str, mode: str) -> None:
    """Exactly the keys coatcheck.ids makes (64 lower-case hex): ValueError before any I/O."""
    keys = Keys("coatcheck:")
    with pytest.raises(ValueError):
        keys.data(bad)
    with pytest.raises(ValueError):
        keys.lock(bad)
    assert keys.storage_key("coatcheck:s:" + bad) is None
    store = store_for("memcached://127.0.0.1:1?timeout=0.2&connect_timeout=0.2", mode)
    with pytest.raises(ValueError):
        await aw(store.read(bad, LockRequest("t", 5)))
    with pytest.raises(ValueError):
        await aw(store.write(bad, b"x", time.time() + 60))
    with pytest.raises(ValueError):
        await aw(store.destroy(bad))
    await aw(store.close())


def test_a_plain_prefix_is_kept_readable() -> None:
    keys = Keys("coatcheck:")
    assert keys.data(KEY) == "coatcheck:s:" + KEY
    assert keys.lock(KEY) == "coatcheck:l:" + KEY
    assert keys.storage_key(keys.data(KEY)) == KEY
    assert keys.storage_key(keys.lock(KEY)) is None


@pytest.mark.parametrize(
    "bad",
    [
        "memcached://127.0.0.1:11211?prefix=" + "p" * 1100,
        "memcached://user:pw@127.0.0.1:11211",
        "memcached://127.0.0.1:11211?colour=blue",
        "memcached://127.0.0.1:11211?timeout=0",
        "memcached://127.0.0.1:99999",
        "memcached://127.0.0.1:11211/db",
    ],
)
def test_bad_urls_are_refused_at_open(bad: str) -> None:
    with pytest.raises(ConfigError):
        open_store(bad)


def test_several_servers_parse() -> None:
    s = parse("memcached://a:1,[::1]:2,b?prefix=x:&timeout=0.5&pool_size=3")
    assert s.servers == (("a", 1), ("::1", 2), ("b", 11211))
    assert (s.prefix, s.timeout, s.pool_size) == ("x:", 0.5, 3)


# --- what is stored --------------------------------------------------------------------------


async def test_the_raw_id_appears_in_no_key_and_no_value(url: str, mode: str) -> None:
    store = store_for(url, mode)
    manager: Any = (
        AsyncSessionManager(store, config())
        if isinstance(store, AsyncMemcachedStore)
        else SessionManager(store, config())
    )
    s = await aw(manager.start())
    s["user"] = "ann"
    await aw(s.write_close())
    held = await aw(manager.start(s.id))  # leave a lock item as well
    ns = Keys(parse(url).prefix).ns
    names = [n for n in metadump() if n.startswith(ns)]
    assert len(names) == 2  # the record and the lock
    values = raw().get_many(names)
    assert len(values) == 2
    assert storage_key(s.id) in names[0] + names[1]
    for name, value in values.items():
        assert s.id not in name
        assert s.id.encode() not in value
    await aw(held.write_close())
    await aw(store.close())


# --- locks and fencing -----------------------------------------------------------------------


async def test_a_lock_is_free_again_right_after_its_lease(url: str, mode: str) -> None:
    store = store_for(url, mode)
    await aw(store.write(KEY, b"x", time.time() + 60))
    assert isinstance(await aw(store.read(KEY, LockRequest("t1", 0.3))), Stored)
    assert await aw(store.read(KEY, LockRequest("t2", 0.3))) is LOCKED
    await asyncio.sleep(0.4)
    # memcached still holds the lock item (its TTL is whole seconds, padded), but the lease
    # inside it has ended: the next request takes it over
    assert Keys(parse(url).prefix).lock(KEY) in raw().get_many([Keys(parse(url).prefix).lock(KEY)])
    assert isinstance(await aw(store.read(KEY, LockRequest("t2", 5))), Stored)
    assert await aw(store.read(KEY, LockRequest("t1", 5))) is LOCKED
    await aw(store.close())


async def test_fencing_refuses_a_late_write(url: str, mode: str) -> None:
    store = store_for(url, mode)
    v1 = await aw(store.write(KEY, b"first", time.time() + 60))
    assert isinstance(await aw(store.read(KEY, LockRequest("slow", 0.2))), Stored)
    await asyncio.sleep(0.3)
    assert isinstance(await aw(store.read(KEY, LockRequest("fast", 5))), Stored)
    v2 = await aw(store.write(KEY, b"fast", time.time() + 60, expect=v1, token="fast"))
    with pytest.raises(LockLost):
        await aw(store.write(KEY, b"slow", time.time() + 60, expect=v1, token="slow"))
    got = await aw(store.read(KEY))
    assert isinstance(got, Stored)
    assert (got.payload, got.version) == (b"fast", v2)
    await aw(store.close())


def interpose(
    monkeypatch: pytest.MonkeyPatch, mode: str, command: str, before: Callable[[], Any]
) -> list[Any]:
    """Run ``before`` just ahead of the next ``command`` any store of ``mode`` sends.

    The commands ``before`` sends itself go straight through; what it returned is appended
    to the list this returns, so a test can see that it ran.
    """
    cls: Any = AsyncClient if mode == "async" else SyncClient
    real = getattr(cls, command)
    ran: list[Any] = []

    async def async_wrapper(self: Any, *args: Any) -> Any:
        if not ran:
            ran.append(None)
            ran.append(await aw(before()))
        return await real(self, *args)

    def sync_wrapper(self: Any, *args: Any) -> Any:
        if not ran:
            ran.append(None)
            ran.append(before())
        return real(self, *args)

    monkeypatch.setattr(cls, command, async_wrapper if mode == "async" else sync_wrapper)
    return ran


async def test_cas_refuses_a_write_when_the_record_changed_after_the_check(
    url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer lands between the write's gets and its cas."""
    store, other = store_for(url, mode), store_for(url, mode)
    v1 = await aw(store.write(KEY, b"one", time.time() + 60))
    ran = interpose(monkeypatch, mode, "cas", lambda: other.write(KEY, b"other", time.time() + 60))
    with pytest.raises(VersionMismatch):  # cas refused; the write read again and saw v2
        await aw(store.write(KEY, b"late", time.time() + 60, expect=v1))
    v2 = ran[-1]
    got = await aw(store.read(KEY))
    assert isinstance(got, Stored)
    assert (got.payload, got.version) == (b"other", v2)
    await aw(store.close())
    await aw(other.close())


async def test_release_by_another_token_keeps_the_lock(url: str, mode: str) -> None:
    store = store_for(url, mode)
    await aw(store.write(KEY, b"x", time.time() + 60))
    assert isinstance(await aw(store.read(KEY, LockRequest("mine", 0.5))), Stored)
    await aw(store.release(KEY, "theirs"))
    assert await aw(store.read(KEY, LockRequest("theirs", 5))) is LOCKED
    await aw(store.release(KEY, "mine"))  # under a second left: the stale-value release
    assert isinstance(await aw(store.read(KEY, LockRequest("theirs", 5))), Stored)
    await aw(store.close())


async def test_a_late_release_never_removes_a_lock_taken_over_meanwhile(
    url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release near the end of its lease: another token takes the lock before its cas."""
    store, other = store_for(url, mode), store_for(url, mode)
    await aw(store.write(KEY, b"x", time.time() + 60))
    assert isinstance(await aw(store.read(KEY, LockRequest("old", 0.3))), Stored)

    def take_over() -> Any:  # sync in both modes: the async wrapper awaits what it returns
        time.sleep(0.35)  # the lease ends; another request takes the lock
        return other.read(KEY, LockRequest("new", 30))

    ran = interpose(monkeypatch, mode, "cas", take_over)
    await aw(store.release(KEY, "old"))  # its gets showed "old" with < 1 s left
    assert isinstance(ran[-1], Stored)
    assert await aw(store.read(KEY, LockRequest("third", 30))) is LOCKED  # "new" holds it
    await aw(store.close())
    await aw(other.close())


# --- round trips -----------------------------------------------------------------------------

COMMANDS = ("gets_many", "add", "cas", "add_gets", "cas_release", "delete_many")
COMMANDS += ("delete_unacknowledged", "metadump")


def counted(monkeypatch: pytest.MonkeyPatch, mode: str) -> Counter[str]:
    """How many times each client command runs from now on, in stores of ``mode``."""
    cls: Any = AsyncClient if mode == "async" else SyncClient
    calls: Counter[str] = Counter()
    for name in COMMANDS:
        real = getattr(cls, name)

        def wrapper(self: Any, *args: Any, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(self, *args)

        monkeypatch.setattr(cls, name, wrapper)
    return calls


async def test_a_locked_cycle_is_two_round_trips(
    url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read + lock: add and gets sent together. Write + unlock: cas and delete together."""
    store = store_for(url, mode)
    v1 = await aw(store.write(KEY, b"one", time.time() + 60))
    calls = counted(monkeypatch, mode)
    got = await aw(store.read(KEY, LockRequest("mine", 30)))
    assert isinstance(got, Stored) and (got.payload, got.version) == (b"one", v1)
    assert await aw(store.write(KEY, b"two", time.time() + 60, token="mine")) == v1 + 1
    assert calls == {"add_gets": 1, "cas_release": 1}
    got = await aw(store.read(KEY, LockRequest("next", 30)))  # the write released the lock
    assert isinstance(got, Stored) and (got.payload, got.version) == (b"two", v1 + 1)
    await aw(store.release(KEY, "next"))  # after its own read: the delete, nothing else
    assert calls == {"add_gets": 2, "cas_release": 1, "delete_unacknowledged": 1}
    assert isinstance(await aw(store.read(KEY, LockRequest("third", 30))), Stored)
    await aw(store.close())


async def test_an_unlocked_cycle_is_two_round_trips(
    url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = store_for(url, mode)
    v1 = await aw(store.write(KEY, b"one", time.time() + 60))
    calls = counted(monkeypatch, mode)
    assert isinstance(await aw(store.read(KEY)), Stored)
    assert await aw(store.write(KEY, b"two", time.time() + 60, expect=MUST_EXIST)) == v1 + 1
    assert calls == {"gets_many": 1, "cas": 1}
    await aw(store.close())


async def test_a_record_changed_under_the_lock_is_written_the_careful_way(
    url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lockless writer (lock mode none) changes the record between our read and write: our
    one-trip cas is refused, the lock is put back, and the careful path writes over it."""
    store, other = store_for(url, mode), store_for(url, mode)
    await aw(store.write(KEY, b"one", time.time() + 60))
    assert isinstance(await aw(store.read(KEY, LockRequest("mine", 30))), Stored)
    v2 = await aw(other.write(KEY, b"other", time.time() + 60, expect=MUST_EXIST))
    calls = counted(monkeypatch, mode)
    assert await aw(store.write(KEY, b"mine", time.time() + 60, token="mine")) == v2 + 1
    assert calls["cas_release"] == 1 and calls["gets_many"] == 1 and calls["cas"] == 1
    got = await aw(other.read(KEY, LockRequest("next", 30)))  # and the lock is free again
    assert isinstance(got, Stored) and (got.payload, got.version) == (b"mine", v2 + 1)
    await aw(store.close())
    await aw(other.close())


async def test_a_fenced_write_to_a_destroyed_session_writes_nothing(url: str, mode: str) -> None:
    store, other = store_for(url, mode), store_for(url, mode)
    await aw(store.write(KEY, b"one", time.time() + 60))
    assert isinstance(await aw(store.read(KEY, LockRequest("mine", 30))), Stored)
    await aw(other.destroy(KEY))  # a logout elsewhere
    with pytest.raises(LockLost):
        await aw(store.write(KEY, b"late", time.time() + 60, token="mine"))
    assert await aw(other.read(KEY)) is None
    await aw(store.close())
    await aw(other.close())


async def test_a_write_near_the_end_of_its_lease_checks_the_lock_first(
    url: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a second of lease left, no unacknowledged delete: gets, cas, and a release by
    cas to a stale value, which never removes a lock taken over meanwhile."""
    store = store_for(url, mode)
    now = [time.time()]
    store.clock = lambda: now[0]
    await aw(store.write(KEY, b"one", now[0] + 60))
    assert isinstance(await aw(store.read(KEY, LockRequest("mine", 30))), Stored)
    now[0] += 29.5  # on the app's clock; memcached keeps the lock item its 31 real seconds
    calls = counted(monkeypatch, mode)
    await aw(store.write(KEY, b"two", now[0] + 60, token="mine"))
    assert calls == {"gets_many": 2, "cas": 2}
    assert isinstance(await aw(store.read(KEY, LockRequest("next", 30))), Stored)
    await aw(store.close())


async def test_the_record_and_its_lock_on_two_servers(private: Private, mode: str) -> None:
    """Items are placed by their own names, so a record and its lock can sit on different
    servers: each server then gets its own round trip, and every rule still holds."""
    u = url_with(f"cct_{uuid.uuid4().hex[:12]}:", f"{MEMCACHED_URL},127.0.0.1:{private.port}")
    store, other = store_for(u, mode), store_for(u, mode)
    keys, router = Keys(parse(u).prefix), store.router
    candidates = (secrets.token_hex(32) for _ in range(64))
    split = [k for k in candidates if router.index(keys.data(k)) != router.index(keys.lock(k))]
    assert len(split) >= 2
    try:
        for key in split[:2]:
            v1 = await aw(store.write(key, b"one", time.time() + 60))
            assert isinstance(await aw(store.read(key, LockRequest("mine", 30))), Stored)
            assert await aw(other.read(key, LockRequest("theirs", 30))) is LOCKED
            with pytest.raises(LockLost):
                await aw(other.write(key, b"x", time.time() + 60, token="theirs"))
            assert await aw(store.write(key, b"two", time.time() + 60, token="mine")) == v1 + 1
            got = await aw(store.read(key, LockRequest("theirs", 30)))
            assert isinstance(got, Stored) and got.payload == b"two"
    finally:
        await aw(store.close())
        await aw(other.close())
        drop_namespace(u)


async def test_a_full_pool_makes_callers_wait_for_a_connection(url: str, mode: str) -> None:
    """pool_size=1 and eight callers at once: each waits its turn, none fails, and the pool
    never holds more than its one connection."""
    store = store_for(url + "&pool_size=1", mode)
    keys = [secrets.token_hex(32) for _ in range(8)]

    async def cycles(key: str) -> int:
        version = 0
        for _ in range(5):
            version = await aw(store.write(key, b"x", time.time() + 60))
            got = await aw(store.read(key, LockRequest(key, 30)))
            assert isinstance(got, Stored)
            version = await aw(store.write(key, b"y", time.time() + 60, token=key))
        return version

    if mode == "async":
        versions = await asyncio.gather(*(cycles(k) for k in keys))
    else:
        with ThreadPoolExecutor(8) as threads:
            versions = list(threads.map(lambda k: asyncio.run(cycles(k)), keys))
    assert versions == [10] * 8
    pool = store._clients[0].pool  # type: ignore[union-attr]
    assert len(pool.idle) == 1 and not getattr(pool, "busy", ())
    await aw(store.close())


def test_reads_kept_for_writes_are_bounded() -> None:
    reads = Reads()
    for n in range(LIMIT + 5):
        reads.keep(f"{n:064x}", None, Seen(n, 1, 0.0))
    assert len(reads) == LIMIT
    assert reads.take(f"{0:064x}", None) is None  # the oldest went first
    assert reads.take(f"{LIMIT + 4:064x}", None) == Seen(LIMIT + 4, 1, 0.0)
    assert reads.take(f"{LIMIT + 4:064x}", None) is None  # taken once
    assert reads.take(f"{LIMIT:064x}", "a token") is None  # kept by (key, token)


# --- expiry ----------------------------------------------------------------------------------


async def test_expired_data_is_never_live(url: str, mode: str) -> None:
    store = store_for(url, mode)
    await aw(store.write(KEY, b"x", time.time() + 0.3))
    assert await aw(store.validate_id(KEY)) is True
    await asyncio.sleep(0.4)
    assert await aw(store.validate_id(KEY)) is False
    got = await aw(store.read(KEY, LockRequest("t", 5)))
    assert got is None or (isinstance(got, Stored) and got.expires_at <= time.time())
    assert await aw(store.count()) == 0
    await aw(store.close())


async def test_touch_rewrites_the_stored_deadline_and_keeps_the_version(
    url: str, mode: str
) -> None:
    store = store_for(url, mode)
    now = time.time()
    version = await aw(store.write(KEY, b"payload", now + 10))
    await aw(store.update_timestamp(KEY, now + 500))
    got = await aw(store.read(KEY))
    assert isinstance(got, Stored)
    assert (got.payload, got.version, got.expires_at) == (b"payload", version, now + 500)
    exp = int(metadump()[Keys(parse(url).prefix).data(KEY)]["exp"])
    # memcached's own TTL moved too (its clock reads whole seconds and may lag by two)
    assert now + 495 <= exp <= now + 510
    await aw(store.close())


async def test_ttl_over_30_days_is_sent_as_a_unix_time(url: str, mode: str) -> None:
    store = store_for(url, mode)
    now = time.time()
    deadline = now + 45 * DAY
    assert exptime(45 * DAY) > 10 * 365 * DAY  # absolute, not 3888000 seconds
    assert 0 < exptime(29 * DAY) <= 30 * DAY  # relative below the limit
    await aw(store.write(KEY, b"long", deadline))
    # sent as a relative 45 days, memcached would read a time in 1970 and drop it at once
    got = await aw(store.read(KEY))
    assert isinstance(got, Stored) and got.payload == b"long"
    exp = int(metadump()[Keys(parse(url).prefix).data(KEY)]["exp"])
    assert deadline <= exp <= deadline + 10
    await aw(store.close())


def test_gc_is_a_no_op(url: str) -> None:
    store = open_store(url)
    store.write(KEY, b"x", time.time() - 1)
    assert store.gc() == 0
    store.close()


# --- admin and namespaces --------------------------------------------------------------------


async def test_scan_lists_live_records_of_its_own_prefix_only(url: str, mode: str) -> None:
    store = store_for(url, mode)
    other_url = url_with(f"cct_{uuid.uuid4().hex[:12]}:")
    other = store_for(other_url, mode)
    try:
        await aw(store.write("1" * 64, b"abc", time.time() + 60))
        await aw(store.write("2" * 64, b"abcdef", time.time() + 60))
        await aw(store.read("2" * 64, LockRequest("t", 30)))
        await aw(other.write("3" * 64, b"x", time.time() + 60))
        for _ in range(20):  # a metadump skips items in use at that instant: ask again
            got = await listing(store)
            if len(got) == 2:
                break
            await asyncio.sleep(0.1)
        assert got == [("1" * 64, 3, False), ("2" * 64, 6, True)]
        assert await eventually(store, 2)
        # deleted by name: a metadump may miss an item in use, so a crawl-driven cleanup
        # (drop_namespace) is not what this test is about
        for key in ("1" * 64, "2" * 64):
            await aw(store.destroy(key))
        assert await eventually(store, 0)
        assert await eventually(other, 1)  # another prefix is left alone
    finally:
        await aw(store.close())
        await aw(other.close())
        drop_namespace(other_url)


async def listing(store: MemcachedStore | AsyncMemcachedStore) -> list[tuple[str, int, bool]]:
    if isinstance(store, AsyncMemcachedStore):
        metas = [m async for m in store.scan()]
    else:
        metas = list(store.scan())
    return sorted((m.key, m.size, m.locked) for m in metas)


async def eventually(store: MemcachedStore | AsyncMemcachedStore, expected: int) -> bool:
    """count() reaches ``expected``: a metadump skips items in use at that instant."""
    for _ in range(20):
        if await aw(store.count()) == expected:
            return True
        await asyncio.sleep(0.1)
    return False


# --- faults ----------------------------------------------------------------------------------


async def test_unreachable_server_is_store_unavailable(mode: str) -> None:
    store = store_for("memcached://127.0.0.1:1?timeout=0.5&connect_timeout=0.5", mode)
    with pytest.raises(StoreUnavailable) as e:
        await aw(store.read(KEY))
    assert KEY not in str(e.value)
    with pytest.raises(StoreUnavailable):
        await aw(store.write(KEY, b"x", time.time() + 60))
    await aw(store.close())


async def test_a_server_that_never_answers_is_store_unavailable(mode: str) -> None:
    """A listener that takes connections and never replies: every exchange ends at its
    timeout with StoreUnavailable (async: the one timer per exchange fires), and the store
    works again once a real server answers on a fresh store object."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel accepts; nobody ever reads or writes
        port = silent.getsockname()[1]
        store = store_for(f"memcached://127.0.0.1:{port}?timeout=0.2&connect_timeout=1", mode)
        for call in (
            lambda: store.read(KEY),
            lambda: store.read(KEY, LockRequest("t", 5)),
            lambda: store.write(KEY, b"x", time.time() + 60),
        ):
            with pytest.raises(StoreUnavailable) as e:
                await aw(call())
            assert "TimeoutError" in str(e.value) and KEY not in str(e.value)
        await aw(store.close())


async def test_listing_an_unreachable_server_is_store_unavailable(mode: str) -> None:
    """count() and scan() never report 0 sessions for a server they could not ask."""
    store = store_for("memcached://127.0.0.1:1?timeout=0.5&connect_timeout=0.5", mode)
    for listing_call in (store.count, lambda: listing(store)):
        with pytest.raises(StoreUnavailable) as e:
            await aw(listing_call())
        message = str(e.value)
        assert message.startswith("memcached store at 127.0.0.1:1: metadump failed: ")
        assert "ConnectionRefusedError" in message
    await aw(store.close())


def test_stats_on_an_unreachable_server_fails_with_the_reason(capsys: Any) -> None:
    assert cli(["stats", "--store", "memcached://127.0.0.1:1?connect_timeout=0.5"]) != 0
    out, err = capsys.readouterr()
    assert "live sessions" not in out
    assert err.startswith("coatcheck: memcached store at 127.0.0.1:1: metadump failed: ")


async def test_leases_follow_the_injected_clock_and_ttls_are_durations(url: str, mode: str) -> None:
    """With the app's clock 100 days behind, leases still hold and items live their TTL."""
    store = store_for(url, mode)
    store.clock = lambda: time.time() - 100 * DAY
    now = store.clock()
    key = secrets.token_hex(32)  # its own: the sync and async runs share a server and prefix
    await aw(store.write(key, b"x", now + 60))
    assert isinstance(await aw(store.read(key, LockRequest("t1", 5))), Stored)
    assert await aw(store.read(key, LockRequest("t2", 5))) is LOCKED
    name = Keys(parse(url).prefix).data(key)
    for _ in range(50):  # the LRU crawler lists a new item once it has walked its class
        items = metadump()
        if name in items:
            break
        time.sleep(0.05)
    exp = int(items[name]["exp"])
    assert time.time() + 55 <= exp <= time.time() + 65  # 60 s from now, in real time
    await aw(store.close())


def free_port() -> int:
    """A free loopback port from this xdist worker's own range: two workers restarting
    private servers at the same moment must never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = 11299 + 25 * (int(worker) if worker.isdigit() else 0)
    for port in range(first, first + 25):
        if not reachable("127.0.0.1", port, timeout=0.2):
            return port
    raise RuntimeError("no free loopback port for a private memcached")


class Private:
    """A memcached of this test's own on a spare loopback port."""

    def __init__(self) -> None:
        binary = shutil.which("memcached") or "/usr/sbin/memcached"
        if shutil.which(binary) is None:
            if in_ci():
                pytest.fail("memcached is not installed, and CI is set (.ci/memcached.sh)")
            pytest.skip("memcached is not installed (run .ci/memcached.sh)")
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [self.binary, "-u", "root", "-l", "127.0.0.1", "-p", str(self.port), "-m", "8"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if self.proc.poll() is not None:  # it could not listen: someone else has the port
                raise RuntimeError(f"private memcached could not listen on {self.port}")
            if reachable("127.0.0.1", self.port, timeout=0.2):
                time.sleep(0.05)
                if self.proc.poll() is None:  # ours answers, not another's
                    return
            time.sleep(0.05)
        raise RuntimeError("private memcached did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private() -> Iterator[Private]:
    server = Private()
    server.start()
    yield server
    server.stop()


async def test_the_same_store_works_again_after_a_restart(private: Private, mode: str) -> None:
    store = store_for(f"memcached://127.0.0.1:{private.port}?timeout=1&connect_timeout=1", mode)
    await aw(store.write(KEY, b"before", time.time() + 60))
    assert isinstance(await aw(store.read(KEY)), Stored)
    private.stop()
    with pytest.raises(StoreUnavailable):
        await aw(store.read(KEY))
    with pytest.raises(StoreUnavailable):
        await aw(store.write(KEY, b"during", time.time() + 60))
    private.start()
    # memcached keeps nothing across a restart; the pooled sockets were dropped, so the
    # same store object reconnects and works on its first call
    assert await aw(store.read(KEY)) is None
    version = await aw(store.write(KEY, b"after", time.time() + 60))
    got = await aw(store.read(KEY, LockRequest("t", 5)))
    assert isinstance(got, Stored)
    assert (got.payload, got.version) == (b"after", version)
    await aw(store.close())


async def test_a_restart_between_calls_costs_no_error_on_reads(private: Private, mode: str) -> None:
    """Pooled sockets that died with the old server are retried once on a fresh one.

    At once: a reader that kept reading the closed socket (aiomcache's spun on b"" until
    the caller's deadline) would take the whole timeout.
    """
    store = store_for(f"memcached://127.0.0.1:{private.port}?timeout=5", mode)
    await aw(store.write(KEY, b"x", time.time() + 60))
    private.stop()
    private.start()
    started = time.monotonic()
    assert await aw(store.read(KEY)) is None  # no StoreUnavailable: the read was retried
    assert time.monotonic() - started < 1.0
    await aw(store.close())
