"""What is Redis-specific about the Redis store (the conformance suite covers the contract).

Sentinel (127.0.0.1:26379, master "mymaster") and Cluster (127.0.0.1:7000-7002) come from
.ci/redis-extra.sh. The fault, script-cache and TLS tests run redis-servers of their own on
free loopback ports, so killing them never disturbs the shared server.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.cluster
import redis.sentinel

from coatcheck import (
    AsyncSessionManager,
    Config,
    LockLost,
    LockTimeout,
    SessionManager,
    open_async_store,
    open_store,
)
from coatcheck.cli import main as cli
from coatcheck.errors import ConfigError, StoreUnavailable
from coatcheck.ids import storage_key
from coatcheck.stores.base import LOCKED, LockRequest, Stored
from coatcheck.stores.redis import AsyncRedisStore, RedisStore, parse
from coatcheck.stores.redis import _sync as sync_half
from coatcheck.stores.redis._scripts import READ_LOCK_SCRIPT, WRITE_SCRIPT
from tests.support.redis import drop_namespace

from .conftest import aw
from .services import REDIS_URL, reachable, require

SENTINEL = "redis+sentinel://127.0.0.1:26379/mymaster/0"
CLUSTER = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
ENDPOINTS = {
    "redis": parse(REDIS_URL).hosts[0],
    "sentinel": ("127.0.0.1", 26379),
    "cluster": ("127.0.0.1", 7000),
}
BASES = {"redis": REDIS_URL, "sentinel": SENTINEL, "cluster": CLUSTER}


def config(**options: Any) -> Config:
    return Config(**{"cookie_secure": True, "gc_probability": 0, **options})


def with_prefix(base: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}prefix=cct_{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    topology = getattr(request, "param", "redis")
    require(*ENDPOINTS[topology], f"redis ({topology})")
    u = with_prefix(BASES[topology])
    yield u
    drop_namespace(u)


def raw_client(u: str) -> Any:
    """A plain redis-py client on the same server, to look at what the store wrote."""
    s = parse(u)
    if s.topology == "cluster":
        nodes = [redis.cluster.ClusterNode(h, p) for h, p in s.hosts]  # type: ignore[no-untyped-call]
        return redis.cluster.RedisCluster(startup_nodes=nodes)
    if s.topology == "sentinel":
        sentinel = redis.sentinel.Sentinel(list(s.hosts))  # type: ignore[no-untyped-call]
        return sentinel.master_for(s.service, db=s.db)  # type: ignore[no-untyped-call]
    return redis.Redis(s.hosts[0][0], s.hosts[0][1], db=s.db)


def all_keys(u: str) -> dict[bytes, list[bytes]]:
    """Every key under the URL's prefix with every string stored in it."""
    client, prefix = raw_client(u), parse(u).prefix
    out: dict[bytes, list[bytes]] = {}
    for name in client.scan_iter(match=prefix + "*"):
        if client.type(name) == b"hash":
            out[name] = [x for kv in client.hgetall(name).items() for x in kv]
        else:
            out[name] = [client.get(name)]
    client.close()
    return out


# --- sentinel and cluster: round trip, lock, fencing, sync and async ----------------------


@pytest.mark.parametrize("url", ["sentinel", "cluster"], indirect=True)
def test_sync_round_trip_lock_and_fencing(url: str) -> None:
    store = open_store(url)
    try:
        m = SessionManager(store, config())
        s = m.start()
        s["cart"] = ["coat"]
        s.write_close()
        holder = SessionManager(store, config(lock_lease=1.0)).start(s.id)
        assert holder["cart"] == ["coat"]
        with pytest.raises(LockTimeout):
            SessionManager(store, config(lock_wait=0)).start(s.id)
        holder["cart"].append("hat")
        time.sleep(1.3)  # the lease runs out: another request takes the lock and writes
        fast = SessionManager(store, config(lock_wait=0)).start(s.id)
        fast["n"] = 1
        fast.write_close()
        with pytest.raises(LockLost):
            holder.write_close()
        check = m.start(s.id, read_only=True)
        assert dict(check) == {"cart": ["coat"], "n": 1}
    finally:
        store.close()


@pytest.mark.parametrize("url", ["sentinel", "cluster"], indirect=True)
async def test_async_round_trip_lock_and_fencing(url: str) -> None:
    store = open_async_store(url)
    try:
        m = AsyncSessionManager(store, config())
        s = await m.start()
        s["cart"] = ["coat"]
        await s.write_close()
        holder = await AsyncSessionManager(store, config(lock_lease=1.0)).start(s.id)
        assert holder["cart"] == ["coat"]
        with pytest.raises(LockTimeout):
            await AsyncSessionManager(store, config(lock_wait=0)).start(s.id)
        holder["cart"].append("hat")
        await asyncio.sleep(1.3)
        fast = await AsyncSessionManager(store, config(lock_wait=0)).start(s.id)
        fast["n"] = 1
        await fast.write_close()
        with pytest.raises(LockLost):
            await holder.write_close()
        check = await m.start(s.id, read_only=True)
        assert dict(check) == {"cart": ["coat"], "n": 1}
    finally:
        await store.close()


# --- key layout ---------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["cluster"], indirect=True)
def test_a_sessions_keys_share_one_cluster_slot(url: str) -> None:
    store = open_store(url)
    try:
        m = SessionManager(store, config())
        ids = []
        for i in range(6):
            s = m.start()
            s["i"] = i
            s.write_close()
            ids.append(s.id)
        held = [m.start(sid) for sid in ids]  # every session now has a data and a lock key
        client = raw_client(url)
        names = list(all_keys(url))
        assert len(names) == 12
        slots: dict[str, set[int]] = {}
        for name in names:
            key = name.decode().split("{", 1)[1].split("}", 1)[0]
            slots.setdefault(key, set()).add(client.cluster_keyslot(name))
        assert set(slots) == {storage_key(sid) for sid in ids}
        assert all(len(s) == 1 for s in slots.values())
        assert len({next(iter(s)) for s in slots.values()}) > 1  # sessions spread over slots
        metas = list(store.scan())  # SCAN visits every master
        assert {meta.key for meta in metas} == set(slots) and store.count() == 6
        assert all(meta.locked and meta.size > 0 for meta in metas)
        for s in held:
            s.abort()
        client.close()
    finally:
        store.close()


def test_data_key_ttl_follows_the_idle_deadline(url: str) -> None:
    store = open_store(url)
    try:
        m = SessionManager(store, config(idle_timeout=600, touch_threshold=0.1))
        s = m.start()
        s["x"] = 1
        s.write_close()
        client = raw_client(url)
        data = f"{parse(url).prefix}{{{storage_key(s.id)}}}"

        def ttl_matches() -> float:
            stored = store.read(storage_key(s.id))
            assert isinstance(stored, Stored)
            expected_ms = (stored.expires_at - time.time()) * 1000
            assert abs(client.pttl(data) - expected_ms) < 1000
            return stored.expires_at

        first = ttl_matches()
        time.sleep(0.3)
        m.start(s.id).write_close()  # over the touch threshold: the deadline moves
        assert ttl_matches() > first
        lock = LockRequest("t" * 22, 5.0)
        assert isinstance(store.read(storage_key(s.id), lock), Stored)
        assert 0 < client.pttl(data + ":lock") <= 5000  # the lease is the lock key's TTL
        store.release(storage_key(s.id), lock.token)
        assert client.exists(data + ":lock") == 0
        client.close()
    finally:
        store.close()


def test_expired_record_is_never_returned_even_before_its_ttl(url: str) -> None:
    """The app's clock decides liveness: a key Redis has not expired yet still reads absent."""
    store = open_store(url)
    try:
        key = storage_key("x" * 43)
        store.write(key, b"payload", time.time() + 1.0)
        client = raw_client(url)
        data = f"{parse(url).prefix}{{{key}}}"
        assert client.pexpire(data, 60_000)  # Redis keeps it longer, as if its clock lagged
        assert isinstance(store.read(key), Stored)
        time.sleep(1.1)
        assert client.exists(data)
        assert store.read(key) is None
        assert store.read(key, LockRequest("t" * 22, 5.0)) is None
        assert not store.validate_id(key)
        assert store.count() == 0
        client.close()
    finally:
        store.close()


@pytest.mark.parametrize("url", ["redis", "sentinel", "cluster"], indirect=True)
def test_raw_session_ids_never_reach_redis(url: str) -> None:
    store = open_store(url)
    try:
        m = SessionManager(store, config())
        s = m.start()
        s["user"] = "ann"
        s.write_close()
        old = s.id
        s = m.start(old)
        s.regenerate_id(grace=30)  # leaves a tombstone that forwards to the new id
        s.write_close()
        locked = m.start(s.id)  # and a lock key
        keys = all_keys(url)
        assert any(storage_key(s.id).encode() in name for name in keys)
        for name, values in keys.items():
            for sid in (old, s.id):
                assert sid.encode() not in name
                assert all(sid.encode() not in v for v in values)
        locked.abort()
    finally:
        store.close()


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "redis://:s3cretpw@127.0.0.1:1/0",
        "redis://zelda:s3cretpw@127.0.0.1:1/0",
        "redis+cluster://zelda:s3cretpw@127.0.0.1:1,127.0.0.1:2",
        "redis+sentinel://:s3cretpw@127.0.0.1:1/mymaster",
    ],
)
async def test_unreachable_server_raises_store_unavailable_without_secrets(bad: str) -> None:
    for asynchronous in (False, True):
        store = open_async_store(bad) if asynchronous else open_store(bad)
        kind: Any = AsyncSessionManager if asynchronous else SessionManager
        m = kind(store, config())
        with pytest.raises(StoreUnavailable) as info:
            await aw(m.start("A" * 43))
        message = str(info.value)
        assert "127.0.0.1:1" in message
        assert "s3cretpw" not in message and "zelda" not in message
        assert storage_key("A" * 43) not in message
        await aw(store.close())


UNREACHABLE = [
    "redis://zelda:s3cretpw@127.0.0.1:1/0",
    "redis+sentinel://:s3cretpw@127.0.0.1:1/mymaster",
    "redis+cluster://zelda:s3cretpw@127.0.0.1:1",
]


@pytest.mark.parametrize("bad", UNREACHABLE)
async def test_admin_calls_on_an_unreachable_server_raise_store_unavailable(bad: str) -> None:
    """``coatcheck gc`` / ``stats`` and ``count()`` must fail on a dead Redis, never report 0."""
    for asynchronous in (False, True):
        store: Any = open_async_store(bad) if asynchronous else open_store(bad)
        for call, doing in (("gc", "gc"), ("count", "scan"), ("scan", "scan")):  # count scans
            with pytest.raises(StoreUnavailable) as info:
                await aw(scan_all(store) if call == "scan" else getattr(store, call)())
            message = str(info.value)
            assert "127.0.0.1:1" in message and f"{doing} failed" in message, message
            assert "s3cretpw" not in message and "zelda" not in message
        await aw(store.close())


async def scan_all(store: Any) -> list[Any]:
    if isinstance(store, AsyncRedisStore):
        return [meta async for meta in store.scan()]
    return list(store.scan())


@pytest.mark.parametrize("bad", UNREACHABLE[:2])
@pytest.mark.parametrize("command", ["gc", "stats"])
def test_cli_gc_and_stats_fail_on_an_unreachable_server(
    bad: str, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli([command, "--store", bad]) != 0  # a failure, never "removed 0" / "live: 0"
    out, err = capsys.readouterr()
    assert out == "" and "coatcheck: redis store" in err and "127.0.0.1:1" in err
    assert "s3cretpw" not in err and "zelda" not in err


def test_sentinel_that_knows_no_such_master_says_so() -> None:
    require("127.0.0.1", 26379, "redis (sentinel)")
    store = open_store("redis+sentinel://:s3cretpw@127.0.0.1:26379/no-such-master?retries=0")
    with pytest.raises(StoreUnavailable) as info:
        store.count()
    message = str(info.value)
    assert "no sentinel knows a reachable master for 'no-such-master'" in message
    assert "s3cretpw" not in message and "<redis" not in message  # not the client's repr
    store.close()


def test_sync_store_builds_one_client_for_many_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sync store is shared by threads: its lazily built client is built exactly once."""
    built: list[object] = []

    def slow_client(settings: Any) -> object:
        time.sleep(0.05)  # wide enough for every thread to arrive while the first builds
        built.append(object())
        return built[-1]

    monkeypatch.setattr(sync_half, "sync_client", slow_client)
    store = RedisStore(parse("redis://127.0.0.1:1/0"))
    start = threading.Barrier(8)
    seen: list[object] = []

    def use() -> None:
        start.wait()
        seen.append(store.client())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and seen == built * 8


def test_store_times_follow_its_injected_clock(url: str) -> None:
    """Deadlines and TTLs are computed on ``store.clock`` (a manager's ``clock=``)."""
    then = 1_000_000_000.0  # 2001: every real-time check would call the record expired
    store = open_store(url)
    store.clock = lambda: then
    try:
        key = storage_key("C" * 43)
        assert store.write(key, b"p", then + 600) == 1
        client = raw_client(url)
        data = f"{parse(url).prefix}{{{key}}}"
        assert 599_000 < client.pttl(data) <= 600_000  # the TTL is 600 s on the store's clock
        assert isinstance(store.read(key), Stored) and store.validate_id(key)
        assert isinstance(store.read(key, LockRequest("t" * 22, 5.0)), Stored)
        assert [m.key for m in store.scan()] == [key] and store.count() == 1
        store.clock = lambda: then + 601
        assert store.read(key) is None and not store.validate_id(key) and store.count() == 0
        client.close()
    finally:
        store.close()


def test_url_parsing() -> None:
    s = parse("redis://ann:p%40ss@localhost:6380/3?prefix=app:&socket_timeout=0.5")
    assert (s.hosts, s.db, s.username, s.password, s.prefix) == (
        (("localhost", 6380),),
        3,
        "ann",
        "p@ss",
        "app:",
    )
    assert s.socket_timeout == 0.5 and "p@ss" not in repr(s) and "ann" not in repr(s)
    s = parse("redis+sentinel://h1,[::1]:26380/mymaster/2")
    assert s.hosts == (("h1", 26379), ("::1", 26380)) and (s.service, s.db) == ("mymaster", 2)
    s = parse("redis+cluster://a:7000,b:7001?max_connections=7")
    assert s.topology == "cluster" and s.max_connections == 7 and s.prefix == "coatcheck:"
    assert parse("rediss://h/0").tls is not None and parse("redis://h/0").tls is None
    assert parse("redis://[::1]:6380/2").where == "redis store at [::1]:6380/2"
    for wrong in (
        "redis://h/0?prefix={x}:",
        "redis://h/0?bogus=1",
        "redis://h/zero",
        "redis+sentinel://h",
        "redis+cluster://h/4",
        "redis://h/0?connect_timeout=0",
        "redis://a,b/0",
        "redis://h/0?ssl=maybe",
        "redis://h/0?prefix=a:&prefix=b:",
        "redis://h/0?ssl_cert_reqs=sometimes",
    ):
        with pytest.raises(ConfigError):
            parse(wrong)


# --- a Redis of our own, killed and restarted under a live SessionManager -------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A throwaway redis-server on loopback, no persistence, that the test may kill."""

    def __init__(self, tmp: str, extra: tuple[str, ...] = (), tls: bool = False) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.extra = extra
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ports = (
            ("--port", "0", "--tls-port", str(self.port))
            if self.tls
            else ("--port", str(self.port))
        )
        args = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.tmp)
        self.proc = subprocess.Popen(
            ["redis-server", *ports, *args, *self.extra], stdout=subprocess.DEVNULL
        )
        for _ in range(100):
            if reachable("127.0.0.1", self.port, timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("own redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Any) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(str(tmp_path))
    server.start()
    yield server
    server.kill()


def test_sync_store_recovers_after_an_outage(own_redis: OwnRedis) -> None:
    store = RedisStore(parse(f"redis://127.0.0.1:{own_redis.port}/0"))
    m = SessionManager(store, config())
    s = m.start()
    s["n"] = 1
    s.write_close()
    assert m.start(s.id, read_only=True)["n"] == 1
    own_redis.kill()
    with pytest.raises(StoreUnavailable):
        m.start(s.id)
    own_redis.start()  # same port, empty (no persistence): the old session is gone
    again = m.start(s.id)
    assert again.is_new
    again["n"] = 2
    again.write_close()
    assert m.start(again.id, read_only=True)["n"] == 2
    store.close()


async def test_async_store_recovers_after_an_outage(own_redis: OwnRedis) -> None:
    store = AsyncRedisStore(parse(f"redis://127.0.0.1:{own_redis.port}/0"))
    m = AsyncSessionManager(store, config())
    s = await m.start()
    s["n"] = 1
    await s.write_close()
    assert (await m.start(s.id, read_only=True))["n"] == 1
    own_redis.kill()
    with pytest.raises(StoreUnavailable):
        await m.start(s.id)
    own_redis.start()
    again = await m.start(s.id)
    assert again.is_new
    again["n"] = 2
    await again.write_close()
    assert (await m.start(again.id, read_only=True))["n"] == 2
    await store.close()


@pytest.fixture
async def cluster_async_store() -> AsyncIterator[AsyncRedisStore]:
    require("127.0.0.1", 7000, "redis (cluster)")
    u = with_prefix(CLUSTER)
    store = open_async_store(u)
    assert isinstance(store, AsyncRedisStore)
    yield store
    await store.close()
    drop_namespace(u)


async def test_cluster_store_level_lock_semantics(cluster_async_store: AsyncRedisStore) -> None:
    store = cluster_async_store
    key = storage_key("B" * 43)
    assert await store.write(key, b"p", time.time() + 60, expect=0) == 1
    mine = LockRequest("m" * 22, 30)
    assert isinstance(await store.read(key, mine), Stored)
    assert await store.read(key, LockRequest("o" * 22, 30)) is LOCKED
    with pytest.raises(LockLost):
        await store.write(key, b"q", time.time() + 60, token="o" * 22)
    assert await store.write(key, b"q", time.time() + 60, expect=1, token=mine.token) == 2
    assert isinstance(await store.read(key, LockRequest("o" * 22, 30)), Stored)
    assert [m.key async for m in store.scan()] == [key]
    await store.destroy(key)
    assert await store.count() == 0


def test_scripts_are_reloaded_after_script_flush(own_redis: OwnRedis) -> None:
    """A restarted or failed-over server has no scripts: EVALSHA's NOSCRIPT loads them."""
    store = RedisStore(parse(f"redis://127.0.0.1:{own_redis.port}/0"))
    m = SessionManager(store, config())
    s = m.start()
    s["n"] = 1
    s.write_close()
    admin = redis.Redis(port=own_redis.port)
    admin.script_flush()
    shas = (READ_LOCK_SCRIPT.sha, WRITE_SCRIPT.sha)
    assert admin.script_exists(*shas) == [False, False]
    again = m.start(s.id)
    again["n"] += 1
    again.write_close()
    assert m.start(s.id, read_only=True)["n"] == 2
    assert admin.script_exists(*shas) == [True, True]
    admin.close()
    store.close()


@pytest.mark.parametrize("url", ["cluster"], indirect=True)
async def test_cluster_reloads_scripts_on_every_master(url: str) -> None:
    """.ci/redis-extra.sh's cluster is ours alone, so flushing its script cache is safe."""
    sync_store, async_store = open_store(url), open_async_store(url)
    m = SessionManager(sync_store, config())
    am = AsyncSessionManager(async_store, config())
    sids = []
    for i in range(30):  # enough sessions to land on every master (all but surely)
        s = m.start()
        s["i"] = i
        s.write_close()
        sids.append(s.id)
    masters = [redis.Redis(port=port) for port in (7000, 7001, 7002)]
    managers: list[Any] = [m, am]
    for manager in managers:
        for node in masters:
            node.script_flush()
        for sid in sids:
            again = await aw(manager.start(sid))
            again["i"] += 10
            await aw(again.write_close())
    assert [m.start(sid, read_only=True)["i"] for sid in sids] == [i + 20 for i in range(30)]
    for node in masters:
        assert node.script_exists(READ_LOCK_SCRIPT.sha, WRITE_SCRIPT.sha) == [True, True]
        node.close()
    sync_store.close()
    await async_store.close()


@pytest.fixture
def tls_redis(tmp_path: Any) -> Iterator[tuple[OwnRedis, str]]:
    """A TLS-only, password-protected redis-server with a self-signed certificate."""
    if shutil.which("redis-server") is None or shutil.which("openssl") is None:
        pytest.skip("redis-server or openssl is not installed")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    names = ["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    subprocess.run(
        [*openssl, *names, "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    tls = ("--tls-cert-file", cert, "--tls-key-file", key, "--tls-auth-clients", "no")
    server = OwnRedis(str(tmp_path), (*tls, "--requirepass", "pa55-w0rd!"), tls=True)
    server.start()
    yield server, cert
    server.kill()


async def test_rediss_with_password(tls_redis: tuple[OwnRedis, str]) -> None:
    server, cert = tls_redis
    base = f"rediss://:pa55-w0rd%21@127.0.0.1:{server.port}/0?ssl_ca_certs={cert}"
    store = open_store(base)
    s = SessionManager(store, config()).start()
    s["tls"] = True
    s.write_close()
    astore = open_async_store(base)
    again = await AsyncSessionManager(astore, config()).start(s.id)
    assert again["tls"] is True
    await again.write_close()
    store.close()
    await astore.close()
    wrong_password = base.replace("pa55-w0rd%21", "not-it")
    unverified = f"rediss://:pa55-w0rd%21@127.0.0.1:{server.port}/0"  # system CAs only
    plain = f"redis://:pa55-w0rd%21@127.0.0.1:{server.port}/0"
    for bad in (wrong_password, unverified, plain):
        for asynchronous in (False, True):
            bad_store = open_async_store(bad) if asynchronous else open_store(bad)
            with pytest.raises(StoreUnavailable) as info:
                await aw(bad_store.read(storage_key(s.id)))
            assert "pa55-w0rd" not in str(info.value) and "not-it" not in str(info.value)
            await aw(bad_store.close())
