"""Lock hand-over on Redis and PostgreSQL: a waiter wakes when the lock is released.

Every test runs real sessions against the real servers, with the sync store (the waiter in
a thread) and the asyncio store (the waiter in a task). A waiter's reads are counted: one that
sleeps on a notice reads twice (the read that found the lock taken, the read after the
release), however long the holder keeps the lock; a poller reads again and again. The stores'
hand-over counters (``store._handover.stats``) say why each wait ended.

The faults kill the listener's own connection: ``CLIENT KILL TYPE pubsub`` on a redis-server
of the test's own (so no other test's listener is touched), ``pg_terminate_backend`` on the
LISTEN backend of the test's own application_name.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.postgresql import Statements, parse_url
from coatcheck.stores.redis import parse
from coatcheck.stores.redis._scripts import ANNOUNCE_SCRIPT, channel
from tests.support.postgresql import drop_namespace as drop_table
from tests.support.redis import drop_namespace as drop_keys

from .conftest import aw
from .services import POSTGRES_URL, REDIS_URL, require
from .test_redis_store import OwnRedis

Store = Any  # a sync or an asyncio store: the tests drive both through ``aw``


# --- the two servers, as a test sees them ---------------------------------------------------


class Backend:
    """A store URL in a namespace of its own, and a look inside the server behind it."""

    kind = ""

    def __init__(self, url: str) -> None:
        self.url = url

    def open(self, asynchronous: bool) -> Store:
        return open_async_store(self.url) if asynchronous else open_store(self.url)

    def flagged(self, key: str) -> bool:
        """Whether a waiter has announced itself on the lock of ``key``."""
        raise NotImplementedError

    def listeners(self) -> int:
        """Subscriptions (Redis) or LISTEN connections (PostgreSQL) of this namespace."""
        raise NotImplementedError

    def kill_listeners(self) -> int:
        raise NotImplementedError

    def drop(self) -> None:
        raise NotImplementedError


class RedisBackend(Backend):
    kind = "redis"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        s = parse(url)
        self.prefix = s.prefix
        self.raw = redis.Redis(s.hosts[0][0], s.hosts[0][1], db=s.db)

    def flagged(self, key: str) -> bool:
        return bool(self.raw.exists(f"{self.prefix}{{{key}}}:wait"))

    def listeners(self) -> int:
        return int(self.raw.pubsub_numsub(channel(self.prefix))[0][1])

    def kill_listeners(self) -> int:
        """Only on a server of the test's own: it kills every subscriber there."""
        return int(self.raw.client_kill_filter(_type="pubsub"))

    def drop(self) -> None:
        drop_keys(self.url)
        self.raw.close()


class PostgresBackend(Backend):
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.settings = parse_url(url)
        self.table = self.settings.table

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.settings.conninfo, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def flagged(self, key: str) -> bool:
        rows = self.sql(
            f'SELECT lock_waiting FROM "{self.table}" WHERE key = %s', (bytes.fromhex(key),)
        )
        return bool(rows and rows[0][0])

    def _listening(self) -> str:
        return (
            "FROM pg_stat_activity WHERE application_name = %s AND query LIKE 'LISTEN%%'"
            " AND pid <> pg_backend_pid()"
        )

    def listeners(self) -> int:
        return int(self.sql("SELECT count(*) " + self._listening(), (self.table,))[0][0])

    def kill_listeners(self) -> int:
        rows = self.sql(
            "SELECT pg_terminate_backend(pid, 5000) " + self._listening(), (self.table,)
        )
        return len(rows)

    def drop(self) -> None:
        drop_table(self.url)


def redis_url(base: str = REDIS_URL) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}prefix=cch_{uuid.uuid4().hex[:12]}:"


def postgres_url() -> str:
    name = "cch_" + uuid.uuid4().hex[:12]
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}table={name}&application_name={name}"  # our backends, by name


def make_backend(kind: str) -> Backend:
    if kind == "redis":
        u = urlsplit(REDIS_URL)
        require(u.hostname or "127.0.0.1", u.port or 6379, "redis")
        return RedisBackend(redis_url())
    u = urlsplit(POSTGRES_URL)
    require(u.hostname or "127.0.0.1", u.port or 5432, "postgresql")
    return PostgresBackend(postgres_url())


@pytest.fixture(params=["redis", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    b = make_backend(request.param)
    yield b
    b.drop()


@pytest.fixture(params=[False, True], ids=["sync", "async"])
def asynchronous(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def own_redis_backend(tmp_path: Any) -> Iterator[RedisBackend]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(str(tmp_path))
    server.start()
    b = RedisBackend(redis_url(f"redis://127.0.0.1:{server.port}/0"))
    yield b
    b.raw.close()
    server.kill()


# --- driving sync and async sessions alike ------------------------------------------------


def manager(store: Store, **options: Any) -> Any:
    config = Config(**{"cookie_secure": True, "gc_probability": 0, "lock_wait": 10, **options})
    if asyncio.iscoroutinefunction(store.read):
        return AsyncSessionManager(store, config)
    return SessionManager(store, config)


async def new_session(m: Any) -> str:
    s = await aw(m.start())
    s["n"] = 0
    await aw(s.write_close())
    sid: str = s.id
    return sid


def start_waiter(m: Any, sid: str) -> asyncio.Future[Any]:
    """``m.start(sid)`` running on its own: a thread for a sync manager, a task for async."""
    if isinstance(m, AsyncSessionManager):
        return asyncio.ensure_future(m.start(sid))
    return asyncio.ensure_future(asyncio.to_thread(m.start, sid))


def count_reads(
    store: Store, before: Callable[[object], Awaitable[None]] | None = None
) -> list[object]:
    """Record every ``read`` result; ``before(result)`` runs before a result is returned."""
    seen: list[object] = []
    inner = store.read
    if asyncio.iscoroutinefunction(inner):

        async def aread(key: str, lock: Any = None) -> Any:
            result = await inner(key, lock)
            seen.append(result)
            if before is not None:
                await before(result)
            return result

        store.read = aread
    else:

        def read(key: str, lock: Any = None) -> Any:
            result = inner(key, lock)
            seen.append(result)
            if before is not None:
                asyncio.run(before(result))  # the waiter's own thread: a loop of its own
            return result

        store.read = read
    return seen


async def until(condition: Callable[[], object], what: str) -> None:
    """Wait for ``condition`` (a bounded poll: the test fails, rather than hangs)."""
    for _ in range(1000):
        if await aw(condition()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def close(store: Store) -> None:
    await aw(store.close())


# --- a waiter wakes on the release, and does not poll ----------------------------------------


@pytest.mark.parametrize("hold", [0.05, 0.6], ids=["short", "long"])
async def test_a_waiter_wakes_on_release_and_never_polls(
    backend: Backend, asynchronous: bool, hold: float
) -> None:
    store = backend.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    holder = await aw(m.start(sid))
    holder["n"] = 1
    reads = count_reads(store)
    waiter = start_waiter(m, sid)
    await until(lambda: backend.flagged(storage_key(sid)), "the waiter announced itself")
    await asyncio.sleep(hold)  # the holder keeps the lock a while longer
    await aw(holder.write_close())
    w = await waiter
    assert w["n"] == 1  # it waited for the holder's write
    assert len(reads) == 2  # the LOCKED read and the one after the notice, however long the hold
    stats = store._handover.stats
    assert (stats.heard, stats.woken, stats.timed_out, stats.polled) == (1, 1, 0, 0)
    assert not backend.flagged(storage_key(sid))  # the release took the flag away
    await aw(w.abort())
    await close(store)


async def test_many_waiters_all_get_the_lock_in_turn(backend: Backend, asynchronous: bool) -> None:
    store = backend.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    holder = await aw(m.start(sid))
    waiters = [start_waiter(m, sid) for _ in range(4)]
    await until(lambda: backend.flagged(storage_key(sid)), "a waiter announced itself")
    await aw(holder.write_close())
    while waiters:  # the one that has the lock adds one and hands it on
        done, _pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            waiters.remove(task)
            s = task.result()
            s["n"] += 1
            await aw(s.write_close())
    final = await aw(m.start(sid, read_only=True))
    assert final["n"] == 4
    # every hand-over was a notice: nobody polled, nobody was left asleep until a timeout
    assert store._handover.stats.polled == store._handover.stats.timed_out == 0
    await close(store)


# --- the lost-wakeup race ----------------------------------------------------------------


async def test_a_release_before_the_waiter_subscribes_is_not_lost(
    backend: Backend, asynchronous: bool
) -> None:
    """The holder releases right after the waiter's LOCKED read, before it announces."""
    store = backend.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    other = backend.open(asynchronous)  # the holder's own store: its calls are not counted
    holder = await aw(manager(other).start(sid))
    holder["n"] = 1

    async def release_once(result: object) -> None:
        if holder.closed:
            return
        await aw(holder.write_close())

    reads = count_reads(store, release_once)
    w = await start_waiter(m, sid)
    assert w["n"] == 1 and len(reads) == 2
    stats = store._handover.stats
    assert stats.free == 1  # the announcement saw the lock free, so it did not sleep at all
    assert stats.woken == stats.timed_out == 0
    await aw(w.abort())
    await close(store)
    await close(other)


def announce_hook(store: Store, backend: Backend, after: Callable[[], Awaitable[None]]) -> None:
    """Run ``after`` once a waiter's announcement has returned, before it goes to sleep."""
    if backend.kind == "redis":
        name, is_announce = "_eval", lambda args, kw: args[0] is ANNOUNCE_SCRIPT
    else:
        name, is_announce = "_run", lambda args, kw: kw.get("doing") == "announce"
    inner = getattr(store, name)
    if asyncio.iscoroutinefunction(inner):

        async def ahooked(*args: Any, **kw: Any) -> Any:
            result = await inner(*args, **kw)
            if is_announce(args, kw):
                await after()
            return result

        setattr(store, name, ahooked)
    else:

        def hooked(*args: Any, **kw: Any) -> Any:
            result = inner(*args, **kw)
            if is_announce(args, kw):
                asyncio.run(after())
            return result

        setattr(store, name, hooked)


async def test_a_notice_that_arrives_before_the_waiter_sleeps_still_wakes_it(
    backend: Backend, asynchronous: bool
) -> None:
    store = backend.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    other = backend.open(asynchronous)
    holder = await aw(manager(other).start(sid))
    holder["n"] = 1

    async def release_and_hear_it() -> None:
        await aw(holder.write_close())
        await until(lambda: store._handover.stats.heard == 1, "the listener heard the release")

    announce_hook(store, backend, release_and_hear_it)
    reads = count_reads(store)
    w = await start_waiter(m, sid)
    assert w["n"] == 1 and len(reads) == 2
    stats = store._handover.stats
    assert (stats.woken, stats.timed_out, stats.free) == (1, 0, 0)  # woken, not timed out
    await aw(w.abort())
    await close(store)
    await close(other)


# --- what frees a waiter besides a release --------------------------------------------------


async def test_destroy_wakes_the_waiters(backend: Backend, asynchronous: bool) -> None:
    store = backend.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    holder = await aw(m.start(sid))
    waiter = start_waiter(m, sid)
    await until(lambda: backend.flagged(storage_key(sid)), "the waiter announced itself")
    await aw(holder.destroy())  # a logout while another request waits
    w = await waiter
    assert w.is_new  # the session is gone: a fresh one, not a LockTimeout
    assert store._handover.stats.woken == 1 and store._handover.stats.timed_out == 0
    await aw(w.abort())
    await close(store)


async def test_a_crashed_holders_lease_ends_the_wait(backend: Backend, asynchronous: bool) -> None:
    """A holder that never releases sends no notice: the waiter wakes when its lease ends."""
    store = backend.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    abandoned = await aw(manager(store, lock_lease=0.5).start(sid))
    abandoned["n"] = 99  # never written
    reads = count_reads(store)
    w = await start_waiter(m, sid)
    assert w["n"] == 0 and len(reads) == 2  # no polling while the lease ran
    assert store._handover.stats.timed_out == 1  # it slept until the lease ended
    await aw(w.abort())
    await close(store)


async def test_nobody_waiting_means_no_notice_and_no_flag(backend: Backend) -> None:
    """Uncontended locks publish nothing: the first notice seen is the contended session's."""
    store = backend.open(False)
    m = manager(store)
    quiet = await new_session(m)
    notices, stop = listen_raw(backend)
    for finish in ("write_close", "abort", "touch", "destroy"):
        s = m.start(quiet)
        if finish == "write_close":
            s["n"] = 1
        if finish == "touch":
            s.touch()
            finish = "write_close"
        getattr(s, finish)()
        assert not backend.flagged(storage_key(quiet))
    busy = await new_session(m)
    holder = m.start(busy)
    waiter = start_waiter(m, busy)
    await until(lambda: backend.flagged(storage_key(busy)), "the waiter announced itself")
    holder.write_close()
    (await waiter).abort()
    assert next(notices) == storage_key(busy)  # nothing came before it from the quiet session
    stop()
    store.close()


def listen_raw(backend: Backend) -> tuple[Iterator[str], Callable[[], None]]:
    """A subscriber of our own on the store's channel: the keys it hears, in order."""
    if isinstance(backend, RedisBackend):
        pubsub = backend.raw.pubsub()
        pubsub.subscribe(channel(backend.prefix))

        def redis_keys() -> Iterator[str]:
            while True:
                message = pubsub.get_message(timeout=30)
                assert message is not None, "no notice within 30 s"
                if message["type"] == "message":
                    yield message["data"].decode()

        return redis_keys(), pubsub.close
    assert isinstance(backend, PostgresBackend)
    conn = psycopg.connect(backend.settings.conninfo, autocommit=True)
    conn.execute(f'LISTEN "{backend.table}_wake"')

    def pg_keys() -> Iterator[str]:
        while True:
            notices = list(conn.notifies(timeout=30, stop_after=1))
            assert notices, "no notice within 30 s"
            yield from (n.payload for n in notices)

    return pg_keys(), conn.close


# --- failures: the listener's connection ----------------------------------------------------


async def handover_round(
    backend: Backend,
    store: Store,
    m: Any,
    sid: str,
    fault: Callable[[], Awaitable[None]] | None = None,
) -> Any:
    """One contended hand-over on ``sid``; ``fault`` runs while the waiter sleeps."""
    holder = await aw(m.start(sid))
    holder["n"] += 1
    waiter = start_waiter(m, sid)
    await until(lambda: backend.flagged(storage_key(sid)), "the waiter announced itself")
    if fault is not None:
        await fault()
    await aw(holder.write_close())
    w = await waiter
    assert w["n"] == holder["n"]  # it got the lock, after the holder's write
    await aw(w.abort())
    return w


async def check_listener_kill(backend: Backend, asynchronous: bool) -> None:
    store = backend.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    stats = store._handover.stats

    async def kill() -> None:
        assert backend.kill_listeners() >= 1
        # redis-py re-subscribes by itself (a gap); psycopg reports the failure
        await until(lambda: stats.gaps + stats.failures >= 1, "the listener noticed")

    await handover_round(backend, store, m, sid, kill)  # no hang: the waiter still gets it
    heard = stats.heard
    await handover_round(backend, store, m, sid)  # notices are back (a new listener, or the same)
    assert stats.heard == heard + 1
    await close(store)


async def test_a_killed_redis_listener_recovers(
    own_redis_backend: RedisBackend, asynchronous: bool
) -> None:
    await check_listener_kill(own_redis_backend, asynchronous)


async def test_a_killed_postgres_listener_falls_back_then_recovers(asynchronous: bool) -> None:
    backend = make_backend("postgresql")
    try:
        await check_listener_kill(backend, asynchronous)
    finally:
        backend.drop()


async def test_a_listener_that_cannot_subscribe_leaves_waiters_polling(
    tmp_path: Any, asynchronous: bool
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(str(tmp_path), extra=("--rename-command", "SUBSCRIBE", ""))
    server.start()
    try:
        backend = RedisBackend(redis_url(f"redis://127.0.0.1:{server.port}/0"))
        store = backend.open(asynchronous)
        m = manager(store)
        sid = await new_session(m)
        holder = await aw(m.start(sid))
        holder["n"] = 1
        waiter = start_waiter(m, sid)
        await until(lambda: store._handover.stats.failures >= 1, "the listener failed")
        await aw(holder.write_close())
        w = await waiter  # polled with backoff, and got it
        assert w["n"] == 1
        stats = store._handover.stats
        assert stats.polled >= 1 and stats.heard == 0 and not backend.flagged(storage_key(sid))
        await aw(w.abort())
        await close(store)
        backend.raw.close()
    finally:
        server.kill()


async def test_an_old_table_polls_until_create_schema_adds_hand_over(asynchronous: bool) -> None:
    """A table made before hand-over (no lock_waiting): waiters poll; create_schema adds it."""
    backend = make_backend("postgresql")
    assert isinstance(backend, PostgresBackend)
    try:
        for statement in Statements(backend.table).schema:  # the table as it used to be made
            backend.sql(statement)
        store = backend.open(asynchronous)
        m = manager(store)
        sid = await new_session(m)
        holder = await aw(m.start(sid))
        holder["n"] = 1
        waiter = start_waiter(m, sid)
        await until(lambda: store._handover_off_until > 0, "the store gave up on notices")
        await aw(holder.write_close())
        w = await waiter
        assert w["n"] == 1  # polled, and got it
        await aw(w.abort())
        assert store._handover.stats.heard == 0
        await aw(store.create_schema())  # what `coatcheck init` runs, from anywhere
        store._handover_off_until = 0  # as if NO_COLUMN_RETRY had passed: it asks again
        await handover_round(backend, store, m, sid)
        assert store._handover.stats.heard == 1
        await close(store)
    finally:
        backend.drop()


# --- clean-up, options, topologies ------------------------------------------------------------


async def test_close_stops_the_listener_and_its_connection(
    backend: Backend, asynchronous: bool
) -> None:
    store = backend.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    await handover_round(backend, store, m, sid)
    listener = store._handover._listener
    assert listener is not None and listener.live and backend.listeners() == 1
    await close(store)
    assert store._handover._listener is None and not listener.live
    if asynchronous:
        assert listener.task.done()
    else:
        assert not listener.thread.is_alive()
    await until(lambda: backend.listeners() == 0, "the server saw the listener go")


async def test_notify_false_means_polling(backend: Backend, asynchronous: bool) -> None:
    sep = "&" if "?" in backend.url else "?"
    polling = type(backend)(backend.url + sep + "notify=false")
    store = polling.open(asynchronous)
    m = manager(store)
    sid = await new_session(m)
    assert await aw(store.wait_for_release(storage_key(sid), 1.0)) is False
    holder = await aw(m.start(sid))
    holder["n"] = 1
    waiter = start_waiter(m, sid)
    await asyncio.sleep(0.05)
    await aw(holder.write_close())
    w = await waiter
    assert w["n"] == 1
    await aw(w.abort())
    assert store._handover is None and polling.listeners() == 0
    await close(store)
    if isinstance(polling, RedisBackend):
        polling.raw.close()


CLUSTER = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
SENTINEL = "redis+sentinel://127.0.0.1:26379/mymaster/0"


@pytest.mark.parametrize(
    ("base", "endpoint"),
    [(CLUSTER, ("127.0.0.1", 7000)), (SENTINEL, ("127.0.0.1", 26379))],
    ids=["cluster", "sentinel"],
)
async def test_cluster_and_sentinel_hand_over_by_notice(
    base: str, endpoint: tuple[str, int], asynchronous: bool
) -> None:
    require(*endpoint, "redis (cluster / sentinel)")
    url = redis_url(base)
    store = open_async_store(url) if asynchronous else open_store(url)
    try:
        m = manager(store)
        sid = await new_session(m)
        holder = await aw(m.start(sid))
        holder["n"] = 1
        reads = count_reads(store)
        waiter = start_waiter(m, sid)
        await until(lambda: flagged_anywhere(store, sid), "the waiter announced itself")
        await aw(holder.write_close())
        w = await waiter
        assert w["n"] == 1 and len(reads) == 2
        assert (store._handover.stats.heard, store._handover.stats.woken) == (1, 1)
        await aw(w.abort())
    finally:
        await close(store)
        drop_keys(url)


async def flagged_anywhere(store: Store, sid: str) -> bool:
    wait_key = store.keys.trio(storage_key(sid))[2]
    return bool(await aw(store.client().exists(wait_key)))
