"""MySQL/MariaDB specifics; the store contract itself is checked by tests/conformance."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest

from coatcheck import AsyncSessionManager, Config, SessionManager
from coatcheck.errors import ConfigError, LockLost, StoreUnavailable
from coatcheck.locks import new_token
from coatcheck.stores import open_async_store, open_store
from coatcheck.stores._gc import GC_FIRST, GC_MAX, GC_MIN, GC_TARGET, GcPace
from coatcheck.stores.base import LOCKED, LockRequest, Stored
from coatcheck.stores.mysql import AsyncMySQLStore, MySQLStore
from coatcheck.stores.mysql._statements import (
    GC_START,
)
from tests.support.mysql import drop_namespace

from .conftest import aw
from .services import MYSQL_URL, require

CONFIG = Config(cookie_secure=True, gc_probability=0)


@pytest.fixture
def url() -> Iterator[str]:
    parts = urlsplit(MYSQL_URL)
    require(parts.hostname or "127.0.0.1", parts.port or 3306, "mysql")
    table = "cc_" + uuid.uuid4().hex[:12]
    sep = "&" if "?" in MYSQL_URL else "?"
    u = f"{MYSQL_URL}{sep}table={table}"
    yield u
    drop_namespace(u)


def admin() -> Any:
    parts = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        database=parts.path.lstrip("/"),
        autocommit=True,
    )


def sql(query: str, *args: object) -> list[tuple[Any, ...]]:
    conn = admin()
    try:
        with conn.cursor() as cur:
            cur.execute(query, args or None)
            return list(cur.fetchall())
    finally:
        conn.close()


def table_of(url: str) -> str:
    return url.rsplit("table=", 1)[1]


def leases_of(url: str) -> str:
    return table_of(url) + "_leases"


def engine_of(table: str) -> str:
    rows = sql(
        "SELECT engine FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = %s",
        table,
    )
    return str(rows[0][0])


def kill(ids: list[int]) -> None:
    assert ids, "the store has no pooled connection to kill"
    for thread_id in ids:
        sql(f"KILL {int(thread_id)}")


def tables_like(url: str) -> list[str]:
    """The tables named as the URL's table, as information_schema lists them."""
    rows = sql(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = %s",
        table_of(url),
    )
    return [name for (name,) in rows]


# Tests that kill the store's connection use pool_size=1: the one connection the pool hands
# out is the one it keeps, and the test asks it for its id, through the store's own pool.


def sync_id(store: MySQLStore) -> int:
    with store._pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        return int(cur.fetchone()[0])


async def async_id(store: AsyncMySQLStore) -> int:
    async with store._pool.connection() as conn, conn.cursor() as cur:
        await cur.execute("SELECT CONNECTION_ID()")
        (row,) = await cur.fetchall()
        return int(row[0])


# --- schema -----------------------------------------------------------------------------


def test_schema_is_idempotent_and_keeps_rows(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, MySQLStore)
    store.create_schema()
    store.write("a" * 64, b"kept", time.time() + 60)
    store.create_schema()
    MySQLStore(store.settings).create_schema()  # a second process starting up
    assert store.validate_id("a" * 64)
    columns = dict(
        sql(
            "SELECT column_name, column_type FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = %s",
            table_of(url),
        )
    )
    assert columns["storage_key"] == "char(64)"
    assert columns["payload"] == "mediumblob"
    assert columns["expires_at"] == "double"
    assert columns["version"] == "bigint(20)" or columns["version"] == "bigint"
    indexed = {
        c
        for (c,) in sql(
            "SELECT column_name FROM information_schema.statistics"
            " WHERE table_schema = DATABASE() AND table_name = %s",
            table_of(url),
        )
    }
    assert indexed == {"storage_key", "expires_at"}
    (engine,) = sql(
        "SELECT engine FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = %s",
        table_of(url),
    )[0]
    assert engine == "InnoDB"
    assert engine_of(leases_of(url)) == "MEMORY"  # leases: no redo-log flush to take one
    store.close()


async def test_async_schema_is_idempotent(url: str) -> None:
    store = open_async_store(url)
    assert isinstance(store, AsyncMySQLStore)
    await store.create_schema()
    await store.write("b" * 64, b"kept", time.time() + 60)
    await store.create_schema()
    assert await store.validate_id("b" * 64)
    await store.close()


def test_read_only_calls_on_a_missing_table_find_nothing_and_create_nothing(url: str) -> None:
    store = open_store(url)
    key = "a" * 64
    assert store.read(key) is None
    assert store.validate_id(key) is False
    assert store.count() == 0
    assert list(store.scan()) == []
    assert store.gc() == 0
    store.update_timestamp(key, time.time() + 60, token="t")
    store.release(key, "t")
    store.destroy(key)
    assert tables_like(url) == []
    store.close()


async def test_async_read_only_calls_on_a_missing_table_create_nothing(url: str) -> None:
    store = open_async_store(url)
    await store.open()
    key = "a" * 64
    assert await store.read(key) is None
    assert await store.validate_id(key) is False
    assert await store.count() == 0
    assert [m async for m in store.scan()] == []
    assert await store.gc() == 0
    assert tables_like(url) == []
    await store.close()


def test_first_lock_or_write_creates_the_table(url: str) -> None:
    store = open_store(url)
    assert store.read("a" * 64, LockRequest("t", 5)) is None
    assert tables_like(url) == [table_of(url)]
    store.close()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_without_create_schema_a_write_says_run_coatcheck_init(
    url: str, asynchronous: bool
) -> None:
    url += "&create_schema=false"
    store = open_async_store(url) if asynchronous else open_store(url)
    with pytest.raises(StoreUnavailable, match="coatcheck init") as info:
        await aw(store.write("a" * 64, b"x", time.time() + 60))
    assert "create_schema()" in str(info.value)
    with pytest.raises(StoreUnavailable, match="coatcheck init"):
        await aw(store.read("a" * 64, LockRequest("t", 5)))
    assert tables_like(url) == []
    await aw(store.create_schema())  # what `coatcheck init` runs
    assert await aw(store.write("a" * 64, b"x", time.time() + 60)) == 1
    await aw(store.close())


def test_deadlines_follow_the_injected_clock(url: str) -> None:
    store = open_store(url)
    key = "c" * 64
    store.write(key, b"x", time.time() + 60)
    store.clock = lambda: time.time() + 120
    assert store.count() == 0 and not store.validate_id(key)
    assert store.gc() == 1
    store.close()


def test_table_dropped_under_a_running_store_is_recreated(url: str) -> None:
    store = open_store(url)
    store.write("c" * 64, b"x", time.time() + 60)
    sql(f"DROP TABLE `{table_of(url)}`")
    assert store.read("c" * 64) is None
    assert store.write("c" * 64, b"y", time.time() + 60) == 1
    store.close()


# --- what is stored ---------------------------------------------------------------------


def test_raw_session_id_is_never_in_the_table(url: str) -> None:
    store = open_store(url)
    manager = SessionManager(store, CONFIG)
    with manager.start() as session:
        session["user"] = "alice"
    sid = session.id
    with manager.start(sid) as again:
        again["visits"] = 2
    rows = sql(f"SELECT * FROM `{table_of(url)}`")
    assert len(rows) == 1
    assert rows[0][0] == hashlib.sha256(sid.encode()).hexdigest()
    dump = repr(rows).encode()
    assert sid.encode() not in dump
    assert sid.encode() not in b"".join(v for v in rows[0] if isinstance(v, bytes))
    store.close()


@pytest.mark.parametrize("key", ["AB" * 32, "ab" * 32 + "a", "ab" * 31, "ü" * 64, "x" * 64])
def test_keys_that_are_not_storage_keys_are_refused(url: str, key: str) -> None:
    store = open_store(url)
    for call in (
        lambda: store.read(key),
        lambda: store.read(key, LockRequest("t", 5)),
        lambda: store.write(key, b"", time.time()),
        lambda: store.update_timestamp(key, time.time()),
        lambda: store.release(key, "t"),
        lambda: store.destroy(key),
        lambda: store.validate_id(key),
    ):
        with pytest.raises(ValueError, match="storage key"):
            call()
    assert tables_like(url) == []
    store.close()


# --- gc ---------------------------------------------------------------------------------


def test_gc_deletes_in_batches_and_counts_every_row(url: str) -> None:
    store = open_store(url)
    past, future = time.time() - 10, time.time() + 600
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2510)]
    for key in keys[:2500]:
        store.write(key, b"old", past)
    for key in keys[2500:]:
        store.write(key, b"live", future)
    assert store.gc() == 2500  # more than one batch of 1000
    assert store.count() == 10
    assert store.gc() == 0
    assert sorted(m.key for m in store.scan()) == sorted(keys[2500:])
    store.close()


async def test_async_gc_counts_every_row(url: str) -> None:
    store = open_async_store(url)
    past = time.time() - 10
    for i in range(1200):
        await store.write(hashlib.sha256(b"%d" % i).hexdigest(), b"old", past)
    assert await store.gc() == 1200
    assert await store.count() == 0
    await store.close()


def test_gc_walks_the_index_in_paced_batches(url: str) -> None:
    store = open_store(url)
    store.create_schema()
    now = time.time()
    rows = [(hashlib.sha256(b"%d" % i).hexdigest(), now - 10 - i % 7) for i in range(2500)]
    rows += [(hashlib.sha256(b"live%d" % i).hexdigest(), now + 600) for i in range(10)]
    conn = admin()
    try:
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO `{table_of(url)}` (storage_key, payload, expires_at, version)"
                " VALUES (%s, 'p', %s, 1)",
                rows,
            )
    finally:
        conn.close()
    finds: list[dict[str, Any]] = []
    execute = store._execute

    def recording(statement: str, args: dict[str, Any], **kwargs: Any) -> Any:
        if "limit" in args:
            finds.append(args)
        return execute(statement, args, **kwargs)

    store._execute = recording  # type: ignore[method-assign]
    assert store.gc() == 2500
    assert len(finds) >= 2 and finds[0]["limit"] == GC_FIRST and finds[0]["after"] == GC_START
    assert all(GC_MIN <= f["limit"] <= GC_MAX for f in finds)
    starts = [f["after"] for f in finds]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # walks on, never back
    store._execute = execute  # type: ignore[method-assign]
    assert store.count() == 10 and store.gc() == 0
    store.close()


def test_gc_batch_sizes_follow_the_pace_of_the_batches_before() -> None:
    pace = GcPace()
    assert pace.size == GC_FIRST
    pace.done(GC_FIRST, GC_TARGET)  # on target: about the same again
    assert abs(pace.size - GC_FIRST) <= 1
    pace.done(pace.size, GC_TARGET * 2)  # slow: smaller at once
    assert abs(pace.size - GC_FIRST // 2) <= 1
    size = pace.size
    pace.done(size, GC_TARGET / 100)  # one fast batch: half as large again, at most
    assert pace.size == size * 3 // 2
    for _ in range(30):
        pace.done(pace.size, 10.0)
    assert pace.size == GC_MIN  # never below the floor...
    for _ in range(30):
        pace.done(pace.size, 1e-9)
    assert pace.size == GC_MAX  # ...nor above the ceiling


def test_gc_drops_expired_leases_and_keeps_live_sessions(url: str) -> None:
    now = [time.time()]
    store = open_store(url)
    store.clock = lambda: now[0]
    key = "c" * 64
    store.write(key, b"x", now[0] + 600)
    assert isinstance(store.read(key, LockRequest(new_token(), 30)), Stored)  # never released
    assert len(sql(f"SELECT * FROM `{leases_of(url)}`")) == 1
    assert store.gc() == 0
    assert len(sql(f"SELECT * FROM `{leases_of(url)}`")) == 1  # still held
    now[0] += 31
    assert store.gc() == 0
    assert sql(f"SELECT * FROM `{leases_of(url)}`") == []
    assert store.validate_id(key)
    store.close()


# --- leases -----------------------------------------------------------------------------


def test_taking_a_lease_writes_nothing_to_the_session_row(url: str) -> None:
    store = open_store(url)
    key = "a" * 64
    store.write(key, b"x", time.time() + 60)
    row = sql(f"SELECT * FROM `{table_of(url)}`")
    lock = LockRequest(new_token(), 30)
    assert isinstance(store.read(key, lock), Stored)
    assert sql(f"SELECT * FROM `{table_of(url)}`") == row  # InnoDB untouched: nothing to flush
    leases = sql(f"SELECT storage_key, lease_token FROM `{leases_of(url)}`")
    assert leases == [(key, lock.token.encode())]
    assert store.write(key, b"y", time.time() + 60, token=lock.token) == 2
    assert sql(f"SELECT * FROM `{leases_of(url)}`") == []  # the write dropped its lease
    store.close()


def test_a_lease_the_server_forgot_only_refuses_its_holders_write(url: str) -> None:
    """A restart empties the MEMORY lease table: harmless, the fencing check holds."""
    store = open_store(url)
    key = "a" * 64
    store.write(key, b"x", time.time() + 60)
    first = LockRequest(new_token(), 30)
    assert isinstance(store.read(key, first), Stored)
    sql(f"DELETE FROM `{leases_of(url)}`")
    second = LockRequest(new_token(), 30)
    assert isinstance(store.read(key, second), Stored)
    with pytest.raises(LockLost):
        store.write(key, b"late", time.time() + 60, token=first.token)
    assert store.write(key, b"y", time.time() + 60, token=second.token) == 2
    store.close()


def test_relocking_with_the_same_token_while_the_clock_stands_still(url: str) -> None:
    now = time.time()
    store = open_store(url)
    store.clock = lambda: now
    key = "a" * 64
    store.write(key, b"x", now + 600)
    lock = LockRequest(new_token(), 30)
    assert isinstance(store.read(key, lock), Stored)
    assert isinstance(store.read(key, lock), Stored)  # the same lease, taken again unchanged
    assert store.read(key, LockRequest(new_token(), 30)) is LOCKED
    store.close()


OLD_SCHEMA = (
    "CREATE TABLE `{t}` (storage_key CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,"
    " payload MEDIUMBLOB NOT NULL, expires_at DOUBLE NOT NULL, version BIGINT NOT NULL,"
    " lock_token VARBINARY(255) NULL, lock_until DOUBLE NOT NULL DEFAULT 0,"
    " PRIMARY KEY (storage_key), KEY expires_at_idx (expires_at)) ENGINE=InnoDB"
)


def test_a_table_from_before_the_lease_table_keeps_working(url: str) -> None:
    sql(OLD_SCHEMA.format(t=table_of(url)))
    key = "a" * 64
    sql(
        f"INSERT INTO `{table_of(url)}` VALUES (%s, 'x', %s, 3, 'old-token', %s)",
        key,
        time.time() + 60,
        time.time() + 60,
    )
    store = open_store(url)
    assert [m.locked for m in store.scan()] == []  # no lease table yet: nothing is listed
    lock = LockRequest(new_token(), 30)
    got = store.read(key, lock)  # creates the lease table
    assert isinstance(got, Stored) and got.version == 3
    assert engine_of(leases_of(url)) == "MEMORY"
    assert [m.locked for m in store.scan()] == [True]
    assert store.write(key, b"y", time.time() + 60, token=lock.token) == 4
    assert store.write("b" * 64, b"new", time.time() + 60) == 1  # the old columns default
    store.close()


def test_without_create_schema_a_missing_lease_table_says_run_coatcheck_init(url: str) -> None:
    sql(OLD_SCHEMA.format(t=table_of(url)))
    store = open_store(url + "&create_schema=false")
    key = "a" * 64
    store.write(key, b"x", time.time() + 60)
    with pytest.raises(StoreUnavailable, match="coatcheck init") as info:
        store.read(key, LockRequest(new_token(), 30))
    assert leases_of(url) in str(info.value)
    with pytest.raises(LockLost):  # no lease table, so no lease to write under
        store.write(key, b"y", time.time() + 60, token=new_token())
    store.create_schema()
    assert isinstance(store.read(key, LockRequest(new_token(), 30)), Stored)
    store.close()


def test_a_full_lease_table_is_purged_of_expired_leases_first(url: str) -> None:
    store = open_store(url)
    store.create_schema()
    small = store._sql.create_leases.replace("{engine}", "MEMORY")
    conn = admin()
    try:
        with conn.cursor() as cur:  # a lease table of 16 KB: a few dozen leases
            cur.execute(f"DROP TABLE `{leases_of(url)}`")
            cur.execute("SET SESSION max_heap_table_size = 16384")
            cur.execute(small)
            held = 0
            while True:
                try:
                    cur.execute(
                        f"INSERT INTO `{leases_of(url)}` (storage_key, lease_token, lease_until)"
                        " VALUES (%s, 't', 1)",  # leases that ran out long ago
                        (f"{held:064x}",),
                    )
                except pymysql.err.OperationalError:
                    break
                held += 1
    finally:
        conn.close()
    assert held > 2
    keys = [hashlib.sha256(b"%d" % i).hexdigest() for i in range(held + 1)]
    for key in keys:
        store.write(key, b"x", time.time() + 60)
    assert isinstance(store.read(keys[0], LockRequest(new_token(), 30)), Stored)
    assert len(sql(f"SELECT * FROM `{leases_of(url)}`")) == 1  # the expired ones were purged
    for key in keys[1:-1]:
        assert isinstance(store.read(key, LockRequest(new_token(), 30)), Stored)
    with pytest.raises(StoreUnavailable, match="full") as info:  # every lease live: full
        store.read(keys[-1], LockRequest(new_token(), 30))
    assert keys[-1] not in str(info.value)
    store.close()


def wait_for_row_lock_wait(url: str) -> None:
    """Until a transaction on this test's table waits for a row lock (a bounded poll)."""
    for _ in range(500):
        rows = sql(
            "SELECT COUNT(*) FROM information_schema.innodb_trx"
            " WHERE trx_state = 'LOCK WAIT' AND trx_query LIKE %s",
            f"%{table_of(url)}%",
        )
        if rows[0][0]:
            return
        time.sleep(0.02)
    raise AssertionError("the store's write never waited for the row lock")


def test_a_write_waiting_for_a_row_lock_never_holds_up_other_sessions(url: str) -> None:
    """No statement that touches the lease table waits for a session row lock."""
    store = open_store(url + "&read_timeout=20")
    a, b = "a" * 64, "b" * 64
    for key in (a, b):
        store.write(key, b"x", time.time() + 60)
    lock_a = LockRequest(new_token(), 30)
    assert isinstance(store.read(a, lock_a), Stored)
    outcome: list[object] = []
    blocker = hold_row_lock(url, a)
    try:
        writer = threading.Thread(
            target=lambda: outcome.append(
                store.write(a, b"a2", time.time() + 60, token=lock_a.token)
            )
        )
        writer.start()
        wait_for_row_lock_wait(url)
        # a's write holds its lease while it waits: no one can take the lock and read the
        # row before this write lands
        held = sql(f"SELECT lease_token FROM `{leases_of(url)}` WHERE storage_key = %s", a)
        assert held == [(lock_a.token.encode(),)]
        lock_b = LockRequest(new_token(), 30)  # another session's whole cycle, meanwhile
        assert isinstance(store.read(b, lock_b), Stored)
        assert store.write(b, b"b2", time.time() + 60, token=lock_b.token) == 2
        assert writer.is_alive() and outcome == []  # a's write is still waiting
    finally:
        blocker.rollback()
        blocker.close()
    writer.join(20)
    assert outcome == [2]
    store.close()


def test_the_statements_work_with_an_innodb_lease_table(url: str) -> None:
    """What Galera gets (it does not replicate MEMORY tables): the same statements."""
    now = [time.time()]
    store = open_store(url)
    store.clock = lambda: now[0]
    store.create_schema()
    sql(f"ALTER TABLE `{leases_of(url)}` ENGINE=InnoDB")
    key = "a" * 64
    store.write(key, b"x", now[0] + 600)
    first = LockRequest(new_token(), 30)
    assert isinstance(store.read(key, first), Stored)
    assert store.read(key, LockRequest(new_token(), 30)) is LOCKED
    assert [m.locked for m in store.scan()] == [True]
    now[0] += 31
    second = LockRequest(new_token(), 30)
    assert isinstance(store.read(key, second), Stored)
    with pytest.raises(LockLost):
        store.write(key, b"late", now[0] + 600, token=first.token)
    assert store.write(key, b"y", now[0] + 600, token=second.token) == 2
    third = LockRequest(new_token(), 30)
    assert isinstance(store.read(key, third), Stored)
    store.release(key, third.token)
    assert [m.locked for m in store.scan()] == [False]
    store.close()


# --- failures ---------------------------------------------------------------------------


def test_killed_connection_is_replaced_on_the_next_request(url: str) -> None:
    store = open_store(url + "&pool_size=1")
    assert isinstance(store, MySQLStore)
    manager = SessionManager(store, CONFIG)
    with manager.start() as session:
        session["n"] = 1
    killed = sync_id(store)
    kill([killed])
    with manager.start(session.id) as again:
        assert again["n"] == 1
        again["n"] = 2
    with manager.start(session.id, read_only=True) as check:
        assert check["n"] == 2
    assert sync_id(store) != killed
    store.close()


async def test_async_killed_connection_is_replaced_on_the_next_request(url: str) -> None:
    store = open_async_store(url + "&pool_size=1")
    assert isinstance(store, AsyncMySQLStore)
    manager = AsyncSessionManager(store, CONFIG)
    session = await manager.start()
    session["n"] = 1
    await session.write_close()
    killed = await async_id(store)
    kill([killed])
    await asyncio.sleep(0.05)  # a server's loop runs between requests: it sees the hang-up
    again = await manager.start(session.id)
    assert again["n"] == 1
    again["n"] = 2
    await again.write_close()
    check = await manager.start(session.id, read_only=True)
    assert check["n"] == 2
    assert await async_id(store) != killed
    await store.close()


BAD = "mysql://coatuser:s3cret-pw@127.0.0.1:1/test?connect_timeout=2"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_unreachable_server_says_connect_failed(asynchronous: bool) -> None:
    url = "mysql://root@127.0.0.1:1/test?connect_timeout=2"
    store = open_async_store(url) if asynchronous else open_store(url)
    for call in (lambda: store.read("a" * 64), store.count, lambda: store.write("a" * 64, b"x", 1)):
        with pytest.raises(StoreUnavailable) as info:
            await aw(call())
        message = str(info.value)
        assert message.startswith("mysql store at 127.0.0.1:1/test: connect failed: "), message
        assert "schema" not in message
    await aw(store.close())


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_unreachable_server_is_store_unavailable_without_credentials(
    asynchronous: bool,
) -> None:
    store = open_async_store(BAD) if asynchronous else open_store(BAD)
    with pytest.raises(StoreUnavailable) as info:
        await aw(store.read("a" * 64))
    message = str(info.value)
    assert "127.0.0.1:1" in message and "connect failed" in message
    assert "s3cret-pw" not in message and "coatuser" not in message
    assert "s3cret-pw" not in repr(store)
    await aw(store.close())


def test_wrong_password_is_store_unavailable_without_credentials(url: str) -> None:
    parts = urlsplit(url)
    user = parts.username or "root"
    bad = url.replace(f"{parts.netloc}", f"{user}:Wr0ng-pw@{parts.hostname}:{parts.port or 3306}")
    with pytest.raises(StoreUnavailable) as info:
        open_store(bad).count()
    assert "Wr0ng-pw" not in str(info.value)
    assert f"'{user}'" not in str(info.value)
    assert "access denied" in str(info.value).lower()
    assert "connect failed" in str(info.value)


def test_busy_pool_is_store_unavailable(url: str) -> None:
    store = open_store(url + "&pool_size=1&pool_timeout=0.2")
    assert isinstance(store, MySQLStore)
    with store._pool.connection(), pytest.raises(StoreUnavailable, match="busy"):
        store.count()
    assert store.count() == 0  # the slot came back
    store.close()


def hold_row_lock(url: str, key: str) -> Any:
    """An admin transaction holding the row's lock, so the store's next write blocks."""
    conn = admin()
    with conn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute(f"SELECT 1 FROM `{table_of(url)}` WHERE storage_key = %s FOR UPDATE", (key,))
    return conn


def test_read_timeout_is_store_unavailable_and_the_pool_recovers(url: str) -> None:
    store = open_store(url + "&read_timeout=1")
    key = "d" * 64
    store.write(key, b"v1", time.time() + 60)
    blocker = hold_row_lock(url, key)
    try:
        with pytest.raises(StoreUnavailable, match=r"timed out|timeout"):
            store.write(key, b"v2", time.time() + 60)
    finally:
        blocker.rollback()
        blocker.close()
    assert store.read(key) is not None  # a fresh connection replaced the timed-out one
    store.close()


async def test_async_read_timeout_is_store_unavailable_and_the_pool_recovers(url: str) -> None:
    store = open_async_store(url + "&read_timeout=1")
    key = "e" * 64
    await store.write(key, b"v1", time.time() + 60)
    blocker = hold_row_lock(url, key)
    try:
        with pytest.raises(StoreUnavailable, match=r"timed out|timeout"):
            await store.write(key, b"v2", time.time() + 60)
    finally:
        blocker.rollback()
        blocker.close()
    assert await store.read(key) is not None
    await store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_never_shares_the_parents_connection(url: str) -> None:
    store = open_store(url + "&pool_size=1")
    assert isinstance(store, MySQLStore)
    key = "f" * 64
    store.write(key, b"v", time.time() + 60)
    parent_id = sync_id(store)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            found = store.read(key) is not None
            os.write(w, json.dumps({"found": found, "id": sync_id(store)}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    child = json.loads(os.read(r, 4096))
    os.close(r)
    assert status == 0 and child["found"]
    assert child["id"] != parent_id
    assert store.read(key) is not None  # the parent's connection still works
    assert sync_id(store) == parent_id
    store.close()


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "table=bad-name",
        "table=x;drop",
        "table=" + "t" * 65,
        "pool_size=0",
        "read_timeout=-1",
        "create_schema=maybe",
        "colour=blue",
    ],
)
def test_invalid_options_are_config_errors(query: str) -> None:
    with pytest.raises(ConfigError):
        open_store(f"mysql://root@127.0.0.1/test?{query}")


def test_url_without_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="database"):
        open_store("mariadb://root@127.0.0.1:3306")


def test_tls_options_build_a_verifying_context() -> None:
    store = open_store("mysql://root@127.0.0.1/test?ssl=1")
    assert isinstance(store, MySQLStore)
    tls = store.settings.tls
    assert tls is not None and tls.check_hostname
    with pytest.raises(ConfigError, match="TLS"):
        open_store("mysql://root@127.0.0.1/test?ssl_ca=/nonexistent/ca.pem")
    assert open_store("mysql://root@127.0.0.1/test").settings.tls is None  # type: ignore[attr-defined]


def test_repr_and_settings_never_show_the_password() -> None:
    store = open_store("mysql://app:hunter2-pw@127.0.0.1/test")
    assert isinstance(store, MySQLStore)
    assert "hunter2-pw" not in repr(store) and "hunter2-pw" not in repr(store.settings)
