"""PHP-shaped save handlers (coatcheck.handlers): the seeds' MySQL handlers, ported line by
line in examples/php_handler_001.py and examples/php_handler_003.py, pass the store
conformance suite through HandlerStore, sync and async, on the real MariaDB; and the
adapter keeps PHP's order of calls, hands handlers hashes only, refuses to fake a lock, and
survives data that is not its own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import secrets
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
import pytest

from coatcheck import (
    AsyncSessionManager,
    Config,
    ConfigError,
    LockTimeout,
    SessionManager,
    StoreUnavailable,
    open_async_store,
    open_store,
)
from coatcheck.handlers import AsyncHandlerStore, HandlerStore, SessionHandler
from coatcheck.ids import storage_key
from coatcheck.stores.base import Store
from coatcheck.testing import StoreUnderTest, conformance_suite
from coatcheck.wrappers import EncryptedStore, MigratingStore

from .services import MYSQL_URL, REDIS_URL, require

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


SEED_001 = _load("php_handler_001")
SEED_003 = _load("php_handler_003")
_parts = urlsplit(MYSQL_URL)
MYSQL: dict[str, Any] = {
    "host": _parts.hostname or "127.0.0.1",
    "port": _parts.port or 3306,
    "user": unquote(_parts.username or "root"),
    "password": unquote(_parts.password or ""),
    "database": _parts.path.lstrip("/") or "test",
}


def _need_mysql() -> None:
    require(MYSQL["host"], MYSQL["port"], "MariaDB")


def _need_redis() -> None:
    parts = urlsplit(REDIS_URL)
    require(parts.hostname or "127.0.0.1", parts.port or 6379, "Redis")


def _table() -> str:
    return "cc_php_" + uuid.uuid4().hex[:12]


def _query(sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    conn = pymysql.connect(**MYSQL, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def _handler_001(table: str) -> Callable[[], SessionHandler]:
    return lambda: SEED_001.DatabaseSessionHandler(SEED_001.connect(**MYSQL), table)


def _handler_003(table: str) -> Callable[[], SessionHandler]:
    return lambda: SEED_003.MySqlSessionHandler(SEED_003.connect(**MYSQL), table=table)


# --- the conformance suite, through the adapter ------------------------------------------

globals().update(conformance_suite())

CASES = {
    # seed, how its critical sections are made
    "seed001-getlock": (SEED_001, _handler_001, False),
    "seed003-getlock": (SEED_003, _handler_003, False),
    "seed001-redislocks": (SEED_001, _handler_001, True),
}


@pytest.fixture(params=sorted(CASES))
def store_under_test(request: pytest.FixtureRequest) -> Iterator[StoreUnderTest]:
    _need_mysql()
    seed, factory_for, redis_locks = CASES[request.param]
    table = _table()
    seed.create_table(table, **MYSQL)
    locks_url = None
    if redis_locks:
        _need_redis()
        locks_url = f"{REDIS_URL}?prefix=cc_{uuid.uuid4().hex[:12]}:"
    factory = factory_for(table)

    def open_sync() -> HandlerStore:
        return HandlerStore(factory, locks=open_store(locks_url) if locks_url else None)

    def open_async() -> AsyncHandlerStore:
        locks = open_async_store(locks_url) if locks_url else None
        return AsyncHandlerStore(factory, locks=locks)

    yield StoreUnderTest(request.param, open_sync, open_async)
    seed.drop_table(table, **MYSQL)
    if locks_url is not None:
        importlib.import_module("tests.support.redis").drop_namespace(locks_url)


# --- PHP's order of calls ------------------------------------------------------------------

CALLS: list[tuple[str, str]] = []  # (method, id or "") in the order the handlers saw them


class Recorded(SEED_001.DatabaseSessionHandler):
    """Seed 001's handler, recording each call; ``fail`` names a method that raises."""

    fail: str | None = None

    def _note(self, method: str, id: str = "") -> None:
        CALLS.append((method, id))
        if Recorded.fail == method:
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server")

    def open(self, save_path: str, name: str) -> bool:
        self._note("open")
        return bool(super().open(save_path, name))

    def close(self) -> bool:
        self._note("close")
        return bool(super().close())

    def read(self, id: str) -> str:
        self._note("read", id)
        return str(super().read(id))

    def write(self, id: str, data: str) -> bool:
        self._note("write", id)
        return bool(super().write(id, data))

    def destroy(self, id: str) -> bool:
        self._note("destroy", id)
        return bool(super().destroy(id))

    def gc(self, max_lifetime: int) -> int:
        self._note("gc")
        return int(super().gc(max_lifetime))

    def lock(self, id: str, timeout: float) -> bool:
        self._note("lock", id)
        return bool(super().lock(id, timeout))

    def unlock(self, id: str) -> bool:
        self._note("unlock", id)
        return bool(super().unlock(id))


@pytest.fixture
def recorded() -> Iterator[str]:
    _need_mysql()
    table = _table()
    SEED_001.create_table(table, **MYSQL)
    CALLS.clear()
    Recorded.fail = None
    yield table
    Recorded.fail = None
    SEED_001.drop_table(table, **MYSQL)


def _methods() -> list[str]:
    got = [method for method, _ in CALLS]
    CALLS.clear()
    return got


def _one_request(calls: list[str]) -> None:
    """Open first, close last, once each: one request in PHP's order."""
    assert calls[0] == "open" and calls[-1] == "close", calls
    assert calls.count("open") == 1 and calls.count("close") == 1, calls


def test_calls_follow_phps_order_on_every_request(recorded: str) -> None:
    store = HandlerStore(lambda: Recorded(SEED_001.connect(**MYSQL), recorded))
    m = SessionManager(store, Config(gc_probability=1, gc_divisor=1))  # gc on every start
    with m.start() as s:  # a new session: nothing to read, a write that must create
        s["n"] = 1
    calls = _methods()
    _one_request(calls)
    # a new session: gc by probability, then a write that must create (nothing to read)
    assert calls == ["open", "gc", "lock", "read", "write", "unlock", "close"]

    with m.start(s.id) as s:  # open, read (locked), gc, ... write, close
        s["n"] += 1
    calls = _methods()
    _one_request(calls)
    assert calls[:5] == ["open", "lock", "read", "write", "unlock"]  # the lease taken
    assert calls.index("gc") < calls.index("write", 4) < calls.index("close")

    with pytest.raises(RuntimeError), m.start(s.id) as s:  # the app raises: abort
        s["n"] = 99
        raise RuntimeError("the app failed")
    calls = _methods()
    _one_request(calls)
    assert "write" in calls[4:]  # the lease given back (update_timestamp -> write)

    check = m.start(s.id, read_only=True)  # read-only: open, read, gc, close at once
    assert check["n"] == 2
    _one_request(_methods())


def test_close_is_called_when_the_handler_raises(recorded: str) -> None:
    store = HandlerStore(lambda: Recorded(SEED_001.connect(**MYSQL), recorded))
    m = SessionManager(store, Config(gc_probability=0))
    with m.start() as s:
        s["n"] = 1
    _methods()
    Recorded.fail = "read"
    with pytest.raises(StoreUnavailable, match=r"read\(\) raised OperationalError") as info:
        m.start(s.id)
    assert s.id not in str(info.value) and storage_key(s.id) not in str(info.value)
    calls = _methods()
    _one_request(calls)  # the session layer gave the lock back, best effort, then closed
    assert calls[:4] == ["open", "lock", "read", "unlock"]
    Recorded.fail = None
    again = m.start(s.id)
    Recorded.fail = "write"
    again["n"] = 2
    with pytest.raises(StoreUnavailable, match=r"write\(\) raised"):
        again.write_close()
    calls = _methods()
    _one_request(calls)
    assert calls[-2:] == ["unlock", "close"]
    Recorded.fail = None
    assert m.start(s.id, lock_mode="none", read_only=True)["n"] == 1  # nothing was written


async def test_async_store_keeps_the_order_too(recorded: str) -> None:
    store = AsyncHandlerStore(lambda: Recorded(SEED_001.connect(**MYSQL), recorded))
    m = AsyncSessionManager(store, Config(gc_probability=0))
    s = await m.start()
    s["n"] = 1
    await s.write_close()
    _one_request(_methods())
    with pytest.raises(RuntimeError):
        async with await m.start(s.id) as again:
            again["n"] = 5
            raise RuntimeError("the app failed")
    _one_request(_methods())
    Recorded.fail = "read"
    with pytest.raises(StoreUnavailable):
        await m.start(s.id)
    _one_request(_methods())


def test_the_handler_is_given_hashes_never_ids(recorded: str) -> None:
    store = HandlerStore(lambda: Recorded(SEED_001.connect(**MYSQL), recorded))
    m = SessionManager(store, Config(gc_probability=0))
    with m.start() as s:
        s["user"] = "ann"
    with m.start(s.id) as again:
        again.regenerate_id()  # the old id destroyed, the new one written
    given = {id for _, id in CALLS if id}
    assert given == {storage_key(s.id), storage_key(again.id)}
    rows = _query(f"SELECT id, payload FROM `{recorded}`")
    assert [row[0] for row in rows] == [storage_key(again.id)]
    for raw in (s.id, again.id):
        assert all(raw not in row[0] and raw not in row[1] for row in rows)


# --- no lock, no locking mode --------------------------------------------------------------


class Unlocked(SessionHandler):
    """Seed 001's handler exactly as the seed has it: no lock, no ids()."""

    __init__ = SEED_001.DatabaseSessionHandler.__init__
    read = SEED_001.DatabaseSessionHandler.read
    write = SEED_001.DatabaseSessionHandler.write
    destroy = SEED_001.DatabaseSessionHandler.destroy
    gc = SEED_001.DatabaseSessionHandler.gc


@pytest.fixture
def table() -> Iterator[str]:
    _need_mysql()
    name = _table()
    SEED_001.create_table(name, **MYSQL)
    yield name
    SEED_001.drop_table(name, **MYSQL)


@pytest.mark.parametrize("mode", ["exclusive", "optimistic"])
def test_a_handler_without_a_lock_refuses_locking_modes(table: str, mode: str) -> None:
    store = HandlerStore(lambda: Unlocked(SEED_001.connect(**MYSQL), table))
    with SessionManager(store, Config(lock_mode="none")).start() as s:
        s["n"] = 1  # a new session needs no lock: it is written with "must create"
    m = SessionManager(store, Config(lock_mode=mode, gc_probability=0))
    with pytest.raises(ConfigError) as info:
        session = m.start(s.id)
        session["n"] = 2
        session.write_close()
    message = str(info.value)
    assert "lock()" in message and "locks=" in message and "lock_mode='none'" in message
    none = SessionManager(store, Config(lock_mode="none"))
    with none.start(s.id) as s2:  # the honest mode still works: last writer wins
        assert s2["n"] == 1
        s2["n"] = 3
    assert none.start(s.id, read_only=True)["n"] == 3
    with pytest.raises(ConfigError, match=r"ids\(\)"):
        store.count()


def test_a_handler_lock_not_granted_is_a_lock_timeout(table: str) -> None:
    store = HandlerStore(
        lambda: SEED_001.DatabaseSessionHandler(SEED_001.connect(**MYSQL), table), mutex_wait=0.1
    )
    m = SessionManager(store, Config(gc_probability=0))
    with m.start() as s:
        s["n"] = 1
    other = pymysql.connect(**MYSQL, autocommit=True)  # another process in a critical section
    try:
        with other.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (storage_key(s.id),))
        with pytest.raises(LockTimeout, match=r"lock\(\) was not granted"):
            m.start(s.id)
    finally:
        other.close()  # the server frees a lock whose connection is gone
    with m.start(s.id) as s:
        assert s["n"] == 1


# --- data that is not ours ------------------------------------------------------------------

NOT_OURS = [
    "user_id|i:42;logged_in|b:1;",  # a PHP session, serialized PHP's way
    "garbage without a header",
    '{"coatcheck":1}\n{}',  # no deadline, no version
    '{"coatcheck":1,"e":"soon","v":1}\n{}',
    '{"coatcheck":1,"e":1e300,"v":0}\n{}',  # versions start at 1
    '{"coatcheck":2,"e":1e300,"v":1}\n{}',  # a format from the future
    '{"coatcheck":1,"e":1e300,"v":1,"b":true}\nnot base64!',
    '{"coatcheck":1,"e":1e300,"v":1,"t":7}\n{}',
    '{"coatcheck":1,"e":1e300,"v":1}\n',  # a record too short to be a session
    "[" * 5000,
]


def test_data_that_is_not_ours_gives_a_fresh_session(table: str) -> None:
    store = HandlerStore(lambda: SEED_001.DatabaseSessionHandler(SEED_001.connect(**MYSQL), table))
    m = SessionManager(store, Config(gc_probability=0))
    with m.start() as s:
        s["user"] = 1
    key = storage_key(s.id)
    for junk in NOT_OURS:
        _query(f"UPDATE `{table}` SET payload = %s WHERE id = %s", (junk, key))
        fresh = m.start(s.id)
        assert fresh.is_new and fresh.id != s.id and "user" not in fresh, junk
        fresh.abort()
        assert not store.validate_id(key)
    assert store.count() == 0


class Odd(SessionHandler):
    """A handler returning what a careless port might: bytes, numbers, False."""

    answer: object = ""

    def read(self, id: str) -> str:
        return Odd.answer  # type: ignore[return-value]

    def write(self, id: str, data: str) -> bool:
        return True

    def destroy(self, id: str) -> bool:
        return True

    def gc(self, max_lifetime: int) -> int:
        return 0


@pytest.mark.parametrize("answer", [b"\xff\xfe", 42, None, b"", ["a"], object()])
def test_a_read_that_is_not_a_string_gives_a_fresh_session(answer: object) -> None:
    Odd.answer = answer
    m = SessionManager(HandlerStore(Odd), Config(lock_mode="none", gc_probability=0))
    sid = secrets.token_urlsafe(32)
    s = m.start(sid)
    assert s.is_new and s.id != sid


def test_a_read_returning_false_is_a_store_failure() -> None:
    Odd.answer = False  # PHP's read returns false when it failed
    m = SessionManager(HandlerStore(Odd), Config(lock_mode="none", gc_probability=0))
    with pytest.raises(StoreUnavailable, match=r"read\(\) returned False"):
        m.start(secrets.token_urlsafe(32))


# --- construction and create_sid -------------------------------------------------------------


def test_store_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="factory"):
        HandlerStore(Odd())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mutex_wait"):
        HandlerStore(Odd, mutex_wait=0)
    with pytest.raises(ConfigError, match="same kind"):
        HandlerStore(Odd, locks=open_async_store("memory://"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a session handler"):
        HandlerStore(lambda: object()).read(storage_key("A" * 43))  # type: ignore[arg-type,return-value]

    class HalfLocked(Odd):
        def lock(self, id: str, timeout: float) -> bool:
            return True

    with pytest.raises(ConfigError, match="both lock"):
        HandlerStore(HalfLocked).read(storage_key("A" * 43))


class OwnIds(Odd):
    made: list[str] = []  # noqa: RUF012
    size = 32

    def create_sid(self) -> str:
        sid = secrets.token_urlsafe(OwnIds.size)
        OwnIds.made.append(sid)
        return sid


def test_create_sid_is_used_and_held_to_256_bits() -> None:
    m = SessionManager(HandlerStore(OwnIds), Config(lock_mode="none"))
    s = m.start()
    assert s.id == OwnIds.made[-1]
    OwnIds.size = 16  # 128 bits: refused, never issued
    try:
        with pytest.raises(ConfigError, match=r"create_sid\(\).*256"):
            m.start()
    finally:
        OwnIds.size = 32


# --- seed 003's own methods --------------------------------------------------------------


def test_seed_003_is_expired_unexpire_and_database_ttl(table: str) -> None:
    name = _table()
    SEED_003.create_table(name, **MYSQL)
    try:
        handler = SEED_003.MySqlSessionHandler(
            SEED_003.connect(**MYSQL), ttl=30, database_ttl=5, table=name
        )
        m = SessionManager(SEED_003.store(name, ttl=30, **MYSQL), Config(gc_probability=0))
        with m.start() as s:
            s["n"] = 1
        key = storage_key(s.id)
        assert not handler.is_expired(key)
        set_expires = (
            f"UPDATE `{name}` SET Expires = NOW() - INTERVAL %s MINUTE WHERE SessionId = %s"
        )
        _query(set_expires, (1, key))
        assert handler.is_expired(key)
        with m.start(s.id) as again:  # coatcheck's own deadline has not passed: still served
            assert again["n"] == 1
            again["n"] = 2
        assert handler.is_expired(key)  # a write does not move an expired session's time
        handler.unexpire(key)
        assert not handler.is_expired(key)
        _query(set_expires, (1, key))
        assert handler.gc(1440) == 0  # expired one minute ago: kept for database_ttl (5)
        _query(set_expires, (6, key))
        assert handler.gc(1440) == 1
        assert m.start(s.id).is_new
        handler.db_link.close()
    finally:
        SEED_003.drop_table(name, **MYSQL)


# --- the examples run, and their locks hold across processes --------------------------------


@pytest.mark.parametrize("seed", [SEED_001, SEED_003], ids=["001", "003"])
def test_example_main_runs(seed: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    _need_mysql()
    name = _table()
    try:
        seed.main(name, **MYSQL)
    finally:
        seed.drop_table(name, **MYSQL)
    out = capsys.readouterr().out
    assert ("hijacked: True" in out) if seed is SEED_001 else ("Bad session hash." in out)


def increment(table: str, sid: str, times: int) -> None:
    """Run in child processes: ``times`` locked increments through seed 001's handler."""
    m = SessionManager(SEED_001.store(table, **MYSQL), Config(gc_probability=0, lock_wait=60))
    for _ in range(times):
        with m.start(sid) as s:
            s["n"] += 1


@pytest.mark.slow
def test_get_lock_serializes_processes(table: str) -> None:
    m = SessionManager(SEED_001.store(table, **MYSQL), Config(gc_probability=0))
    with m.start() as s:
        s["n"] = 0
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=increment, args=(table, s.id, 50)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert m.start(s.id, read_only=True)["n"] == 200


def test_threaded_handler_calls_leave_the_event_loop_free(table: str) -> None:
    """The async store runs a blocking handler in worker threads: tasks interleave."""

    async def run() -> int:
        store = AsyncHandlerStore(_handler_001(table))
        m = AsyncSessionManager(store, Config(gc_probability=0, lock_wait=30))
        s = await m.start()
        s["n"] = 0
        await s.write_close()

        async def bump() -> None:
            for _ in range(5):
                async with await m.start(s.id) as t:
                    t["n"] += 1

        await asyncio.gather(*(bump() for _ in range(4)))
        final = await m.start(s.id, read_only=True)
        return int(final["n"])

    assert asyncio.run(run()) == 20


def test_an_encrypted_handler_store_keeps_phps_order(recorded: str) -> None:
    # the wrapper hands each request the handler's own view: open once, close once
    store = EncryptedStore(
        HandlerStore(lambda: Recorded(SEED_001.connect(**MYSQL), recorded)), [b"k" * 32]
    )
    _three_requests_in_phps_order(store)


def _three_requests_in_phps_order(store: Store) -> str:
    """A new session, a change, a read-only look: each request opens and closes the handler
    once, in PHP's order. Returns the session id."""
    m = SessionManager(store, Config(gc_probability=0))
    with m.start() as s:
        s["n"] = 1
    _one_request(_methods())
    with m.start(s.id) as again:
        again["n"] += 1
    _one_request(_methods())
    assert m.start(s.id, read_only=True)["n"] == 2
    _one_request(_methods())
    return s.id


def test_a_migrating_store_over_a_handler_keeps_phps_order(recorded: str, tmp_path: Any) -> None:
    # moving away from a PHP-shaped handler: each request opens and closes it once, as alone
    store = MigratingStore(
        HandlerStore(lambda: Recorded(SEED_001.connect(**MYSQL), recorded)),
        open_store(f"sqlite:///{tmp_path / 'new.db'}"),
    )
    sid = _three_requests_in_phps_order(store)
    assert store.failures == 0
    assert store.new.read(storage_key(sid)) is not None  # the new store got the writes
