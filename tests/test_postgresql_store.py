"""PostgreSQL specifics; the shared contract is checked by tests/conformance."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

from coatcheck import AsyncSessionManager, Config, SessionManager, open_async_store, open_store
from coatcheck.errors import ConfigError, LockLost, StoreUnavailable, VersionMismatch
from coatcheck.ids import storage_key
from coatcheck.locks import new_token
from coatcheck.stores._gc import GC_FIRST, GC_MAX, GC_MIN
from coatcheck.stores.base import LOCKED, MUST_CREATE, MUST_EXIST, LockRequest, Stored
from coatcheck.stores.postgresql import AsyncPostgreSQLStore, PostgreSQLStore, parse_url
from coatcheck.stores.postgresql._statements import (
    Statements,
)

from .services import POSTGRES_URL, require
from .support.postgresql import drop_namespace

KEY = storage_key("A" * 43)


@pytest.fixture
def url() -> Iterator[str]:
    parts = urlsplit(POSTGRES_URL)
    require(parts.hostname or "127.0.0.1", parts.port or 5432, "postgresql")
    name = "cc_pg_" + uuid.uuid4().hex[:12]
    sep = "&" if "?" in POSTGRES_URL else "?"
    # a per-test application_name, so a test can find (and kill) only its own connections
    yield f"{POSTGRES_URL}{sep}table={name}&application_name={name}"
    drop_namespace(f"{POSTGRES_URL}{sep}table={name}")


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run a statement outside the store, on its own connection."""
    with psycopg.connect(parse_url(url).conninfo, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def table_exists(url: str) -> bool:
    name = '"' + parse_url(url).table + '"'
    return sql(url, "SELECT to_regclass(%s) IS NOT NULL", (name,)) == [(True,)]


def manager(store: Any, **options: Any) -> Any:
    config = Config(cookie_secure=True, gc_probability=0, **options)
    if isinstance(store, AsyncPostgreSQLStore):
        return AsyncSessionManager(store, config)
    return SessionManager(store, config)


# --- URL and options ----------------------------------------------------------------------


def test_coatcheck_options_are_stripped_and_libpq_options_pass_through() -> None:
    s = parse_url(
        "postgres://ann:pw@db.local:6543/app?table=t1&pool_min=0&pool_max=3"
        "&connect_timeout=2&timeout=1.5&sslmode=require"
    )
    assert (s.table, s.pool_min, s.pool_max, s.connect_timeout, s.timeout) == ("t1", 0, 3, 2, 1.5)
    info = psycopg.conninfo.conninfo_to_dict(s.conninfo)
    assert info["sslmode"] == "require" and info["host"] == "db.local" and info["port"] == "6543"
    assert info["options"] == "-c statement_timeout=1500"
    assert info["application_name"] == "coatcheck"
    assert not {"table", "pool_min", "pool_max", "timeout"} & set(info)
    assert "connect_timeout" not in info  # given to psycopg as a number, not in the conninfo
    assert "pw" not in repr(s)  # settings may be logged: the password stays out


@pytest.mark.parametrize(
    "query",
    [
        "table=bad-name",
        "table=x;drop",
        "table=" + "t" * 56,
        "pool_max=0",
        "pool_min=5&pool_max=2",
        "timeout=abc",
        "connect_timeout=0",
        "table=a&table=b",
        "create_schema=maybe",
    ],
)
def test_bad_options_are_refused_at_start_up(query: str) -> None:
    with pytest.raises(ConfigError):
        open_store(f"postgresql://postgres@127.0.0.1/test?{query}")


def test_both_schemes_open_the_store(url: str) -> None:
    for scheme in ("postgresql", "postgres"):
        store = open_store(url.replace("postgresql://", f"{scheme}://", 1))
        assert isinstance(store, PostgreSQLStore)
        assert store.write(KEY, b"x", time.time() + 60) >= 1
        store.close()


# --- schema -------------------------------------------------------------------------------


def test_schema_creation_is_idempotent_and_concurrent(url: str) -> None:
    stores = [open_store(url) for _ in range(4)]
    errors: list[BaseException] = []

    def create(store: Any) -> None:
        try:
            store.create_schema()
            store.create_schema()
        except BaseException as e:  # collected: a thread's exception would be lost
            errors.append(e)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    table = parse_url(url).table
    assert sql(url, "SELECT count(*) FROM pg_indexes WHERE tablename = %s", (table,)) == [(2,)]
    assert stores[0].write(KEY, b"x", time.time() + 60) == 1
    assert stores[1].write(KEY, b"y", time.time() + 60) == 2


async def test_async_schema_and_lazy_creation_on_first_write(url: str) -> None:
    store = open_async_store(url)
    assert isinstance(store, AsyncPostgreSQLStore)
    assert await store.write(KEY, b"x", time.time() + 60) == 1  # created the table
    assert table_exists(url)
    await store.create_schema()
    await store.create_schema()
    assert await store.write(KEY, b"y", time.time() + 60) == 2
    await store.close()


def test_the_first_lock_creates_a_missing_table(url: str) -> None:
    store = open_store(url)
    assert store.read(KEY, LockRequest(new_token(), 30)) is None
    assert table_exists(url)
    store.close()


def test_read_only_operations_on_a_missing_table_create_nothing(url: str) -> None:
    store = open_store(url)
    assert store.read(KEY) is None
    assert store.validate_id(KEY) is False
    assert store.count() == 0
    assert list(store.scan()) == []
    assert store.gc() == 0
    store.update_timestamp(KEY, time.time() + 60, token=new_token())  # nothing to touch
    store.release(KEY, new_token())
    store.destroy(KEY)
    assert not table_exists(url)
    store.close()


async def test_async_read_only_operations_on_a_missing_table_create_nothing(url: str) -> None:
    store = open_async_store(url)
    assert await store.read(KEY) is None
    assert await store.validate_id(KEY) is False
    assert await store.count() == 0
    assert [m async for m in store.scan()] == []
    assert await store.gc() == 0
    await store.destroy(KEY)
    assert not table_exists(url)
    await store.close()


def test_without_create_schema_a_write_on_a_missing_table_says_to_run_init(url: str) -> None:
    store = open_store(url + "&create_schema=false")
    with pytest.raises(StoreUnavailable, match="coatcheck init") as info:
        store.write(KEY, b"x", time.time() + 60)
    assert "does not exist" in str(info.value) and KEY not in str(info.value)
    with pytest.raises(StoreUnavailable, match="coatcheck init"):
        store.read(KEY, LockRequest(new_token(), 30))
    assert store.read(KEY) is None  # reads still read "nothing"
    assert not table_exists(url)
    store.create_schema()  # what `coatcheck init` runs
    assert store.write(KEY, b"x", time.time() + 60) == 1
    store.close()


async def test_async_without_create_schema_a_write_says_to_run_init(url: str) -> None:
    store = open_async_store(url + "&create_schema=false")
    with pytest.raises(StoreUnavailable, match="coatcheck init"):
        await store.write(KEY, b"x", time.time() + 60, expect=MUST_CREATE)
    assert not table_exists(url)
    await store.create_schema()
    assert await store.write(KEY, b"x", time.time() + 60, expect=MUST_CREATE) == 1
    await store.close()


def test_the_table_never_holds_the_raw_id(url: str) -> None:
    store = open_store(url)
    s = manager(store).start()
    s["user"] = "ann"
    s.write_close()
    raw = s.id.encode()
    assert sql(url, f"SELECT key FROM {parse_url(url).table}") == [(hashlib.sha256(raw).digest(),)]
    dump = sql(url, f"SELECT t::text, encode(payload, 'escape') FROM {parse_url(url).table} t")
    assert dump and all(s.id not in text and s.id not in payload for text, payload in dump)
    assert all(raw.hex() not in text for text, _ in dump)
    store.close()


# --- operations at the store level --------------------------------------------------------


def test_expired_rows_are_never_live_and_never_locked(url: str) -> None:
    store = open_store(url)
    store.write(KEY, b"old", time.time() - 1)
    assert not store.validate_id(KEY)
    assert store.count() == 0 and list(store.scan()) == []
    first = store.read(KEY, LockRequest(new_token(), 30))
    assert isinstance(first, Stored) and first.payload == b"old"  # the engine discards it
    assert isinstance(store.read(KEY, LockRequest(new_token(), 30)), Stored)  # not locked
    store.close()


def test_keys_must_be_lower_case_storage_keys(url: str) -> None:
    store = open_store(url)
    assert KEY.upper() != KEY
    for bad in (KEY.upper(), KEY[:-1], "g" * 64):
        with pytest.raises(ValueError):
            store.read(bad)
        with pytest.raises(ValueError):
            store.write(bad, b"x", time.time() + 60)
        with pytest.raises(ValueError):
            store.destroy(bad)
    store.close()


def test_leases_follow_the_injected_clock(url: str) -> None:
    now = [time.time()]
    store = open_store(url)
    store.clock = lambda: now[0]
    store.write(KEY, b"x", now[0] + 600)
    first = LockRequest(new_token(), 30)
    assert isinstance(store.read(KEY, first), Stored)
    assert store.read(KEY, LockRequest(new_token(), 30)) is LOCKED
    assert [m.locked for m in store.scan()] == [True]
    now[0] += 31  # the app's clock, not the database's, ends the lease
    assert [m.locked for m in store.scan()] == [False]
    second = LockRequest(new_token(), 30)
    assert isinstance(store.read(KEY, second), Stored)
    with pytest.raises(LockLost):
        store.write(KEY, b"late", now[0] + 600, token=first.token)
    assert store.write(KEY, b"y", now[0] + 600, token=second.token) == 2
    store.close()


async def test_async_leases_follow_a_managers_clock(url: str) -> None:
    now = [time.time()]
    store = open_async_store(url)
    AsyncSessionManager(store, Config(cookie_secure=True, gc_probability=0), clock=lambda: now[0])
    await store.write(KEY, b"x", now[0] + 600)
    first = LockRequest(new_token(), 30)
    assert isinstance(await store.read(KEY, first), Stored)
    assert await store.read(KEY, LockRequest(new_token(), 30)) is LOCKED
    now[0] += 31
    assert isinstance(await store.read(KEY, LockRequest(new_token(), 30)), Stored)
    with pytest.raises(LockLost):
        await store.write(KEY, b"late", now[0] + 600, token=first.token)
    await store.close()


def test_write_failures_say_why(url: str) -> None:
    store = open_store(url)
    exp = time.time() + 60
    with pytest.raises(LockLost):
        store.write(KEY, b"x", exp, token=new_token())  # no row: no lock to hold
    assert store.write(KEY, b"x", exp, expect=MUST_CREATE) == 1
    with pytest.raises(VersionMismatch):
        store.write(KEY, b"x", exp, expect=MUST_CREATE)
    with pytest.raises(VersionMismatch):
        store.write(KEY, b"x", exp, expect=7)
    lock = LockRequest(new_token(), 30)
    assert isinstance(store.read(KEY, lock), Stored)
    assert store.read(KEY, LockRequest(new_token(), 30)) is LOCKED
    with pytest.raises(VersionMismatch):  # the lock is held, the version is wrong
        store.write(KEY, b"y", exp, expect=9, token=lock.token)
    assert store.write(KEY, b"y", exp, expect=1, token=lock.token) == 2  # releases the lock
    assert store.write(KEY, b"z", exp, expect=MUST_EXIST) == 3
    meta = list(store.scan())
    assert [(m.key, m.size, m.locked) for m in meta] == [(KEY, 1, False)]
    store.close()


def test_touch_releases_and_never_shortens_the_deadline(url: str) -> None:
    store = open_store(url)
    far = time.time() + 600
    store.write(KEY, b"x", far)
    lock = LockRequest(new_token(), 30)
    assert isinstance(store.read(KEY, lock), Stored)
    store.update_timestamp(KEY, far - 300, token=lock.token)
    got = store.read(KEY, LockRequest(new_token(), 30))  # released: anyone may lock it
    assert isinstance(got, Stored) and got.expires_at == far
    store.close()


def fill_expired(url: str, n: int, deadline: float) -> None:
    table = parse_url(url).table
    sql(
        url,
        f"INSERT INTO {table} (key, payload, expires_at, version)"
        " SELECT sha256(('old' || i)::text::bytea), 'p', %s - i, 1 FROM generate_series(1, %s) i",
        (deadline, n),
    )


def test_gc_deletes_in_batches_along_the_index_and_counts_them(url: str) -> None:
    store = open_store(url)
    store.create_schema()
    fill_expired(url, 2500, time.time() - 10)
    for i in range(10):
        store.write(storage_key(f"live{i}".ljust(43, "A")), b"p", time.time() + 600)
    batches: list[dict[str, Any]] = []
    run = store._run

    def counting(query: str, params: Any, **kwargs: Any) -> Any:
        batches.append(params)
        return run(query, params, **kwargs)

    store._run = counting  # type: ignore[method-assign]
    assert store.gc() == 2500
    assert len(batches) >= 2  # bounded batches, the first of GC_FIRST rows
    assert batches[0]["limit"] == GC_FIRST and batches[0]["after"] == float("-inf")
    assert all(GC_MIN <= b["limit"] <= GC_MAX for b in batches)
    starts = [b["after"] for b in batches]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # walks on, never back
    store._run = run  # type: ignore[method-assign]
    assert store.gc() == 0
    assert store.count() == 10
    assert sql(url, f"SELECT count(*) FROM {parse_url(url).table}") == [(10,)]
    store.close()


def test_gc_skips_a_row_a_request_has_locked_instead_of_waiting(url: str) -> None:
    store = open_store(url)
    store.create_schema()
    fill_expired(url, 50, time.time() - 10)
    table = parse_url(url).table
    with psycopg.connect(parse_url(url).conninfo) as blocker:  # a request's row lock
        blocker.execute(f"SELECT 1 FROM {table} ORDER BY expires_at LIMIT 1 FOR UPDATE")
        assert store.gc() == 49
        blocker.rollback()
    assert store.gc() == 1
    store.close()


def test_taking_a_lease_does_not_wait_for_a_wal_flush_but_a_write_does(url: str) -> None:
    """The lock statement turns synchronous_commit off for its own transaction only."""
    store = open_store(url + "&pool_max=1&notify=false")
    store.write(KEY, b"x", time.time() + 60)
    q = Statements(parse_url(url).table)
    lock = LockRequest(new_token(), 30)
    lock_query, lock_params = q.read_query(KEY, lock, time.time())
    write_query, write_params = q.write_query(KEY, b"y", time.time() + 60, None, lock.token, 0)
    with psycopg.connect(parse_url(url).conninfo) as conn:  # inside a transaction, to look
        assert conn.execute(lock_query, lock_params, binary=True).fetchone()
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
        conn.rollback()
        conn.execute(write_query, {**write_params, "now": time.time()}, binary=True)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        conn.rollback()
    # on the store's own (autocommit) connection the setting ends with the statement
    assert isinstance(store.read(KEY, lock), Stored)
    rows, _ = store._execute("SHOW synchronous_commit", None, retry=False)
    assert rows == [("on",)]
    assert store.write(KEY, b"y", time.time() + 60, token=lock.token) == 2
    store.close()


def test_a_gc_batch_does_not_wait_for_a_wal_flush(url: str) -> None:
    """A deleted expired row that a crash brings back is still expired: GC does it again."""
    store = open_store(url)
    store.create_schema()
    fill_expired(url, 5, time.time() - 10)
    q = Statements(parse_url(url).table)
    params = {"now": time.time(), "after": float("-inf"), "limit": 10}
    with psycopg.connect(parse_url(url).conninfo) as conn:  # inside a transaction, to look
        found, deleted, _ = conn.execute(q.gc, params, binary=True).fetchone()
        assert (found, deleted) == (5, 5)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
        conn.rollback()
    assert store.gc() == 5
    store.close()


def test_a_lease_the_server_lost_only_refuses_its_holders_write(url: str) -> None:
    """What a crash can do to a lease committed without a flush: forget it. Harmless."""
    store = open_store(url)
    store.write(KEY, b"x", time.time() + 60)
    first = LockRequest(new_token(), 30)
    assert isinstance(store.read(KEY, first), Stored)
    table = parse_url(url).table
    sql(url, f"UPDATE {table} SET lock_token = NULL, lock_until = 0")  # the lease is gone
    second = LockRequest(new_token(), 30)
    assert isinstance(store.read(KEY, second), Stored)  # free again: another request takes it
    with pytest.raises(LockLost):
        store.write(KEY, b"late", time.time() + 60, token=first.token)
    assert store.write(KEY, b"y", time.time() + 60, token=second.token) == 2
    store.close()


def test_a_statement_timeout_is_store_unavailable(url: str) -> None:
    store = open_store(url + "&timeout=0.3")
    store.write(KEY, b"x", time.time() + 60)
    table = parse_url(url).table
    with psycopg.connect(parse_url(url).conninfo) as blocker:  # holds the row lock
        blocker.execute(f"SELECT 1 FROM {table} FOR UPDATE")
        with pytest.raises(StoreUnavailable, match="statement timeout"):
            store.read(KEY, LockRequest(new_token(), 30))
        blocker.rollback()
    assert isinstance(store.read(KEY, LockRequest(new_token(), 30)), Stored)
    store.close()


# --- failures -----------------------------------------------------------------------------


def terminate_pool(url: str) -> int:
    """Kill every server backend the store's pool holds, waiting until they are gone."""
    name = parse_url(url).table  # the url fixture names the connections after the table
    rows = sql(
        url,
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = %s"
        " AND pid <> pg_backend_pid()",
        (name,),
    )
    assert rows and all(ok for (ok,) in rows)
    return len(rows)


def test_sync_store_recovers_after_its_connections_are_terminated(url: str) -> None:
    store = open_store(url + "&pool_min=3")
    m = manager(store)
    with m.start() as s:
        s["n"] = 1
    sid = s.id
    assert terminate_pool(url) >= 1
    with m.start(sid) as again:  # the same manager, the same process
        assert again["n"] == 1
        again["n"] += 1
    assert manager(store).start(sid, read_only=True)["n"] == 2
    store.close()


async def test_async_store_recovers_after_its_connections_are_terminated(url: str) -> None:
    store = open_async_store(url + "&pool_min=3")
    m = manager(store)
    s = await m.start()
    s["n"] = 1
    await s.write_close()
    assert terminate_pool(url) >= 1
    again = await m.start(s.id)
    assert again["n"] == 1
    again["n"] += 1
    await again.write_close()
    check = await m.start(s.id, read_only=True)
    assert check["n"] == 2
    await store.close()


UNREACHABLE = "postgresql://ann:s3cret-pw@127.0.0.1:1/test?connect_timeout=2"
CONNECT_FAILED = "postgresql store at 127.0.0.1:1/test: connect failed: "


@pytest.mark.parametrize("operation", ["read", "count", "create_schema"])
def test_unreachable_server_says_connect_failed_without_the_password(operation: str) -> None:
    store = open_store(UNREACHABLE)
    with pytest.raises(StoreUnavailable) as info:
        if operation == "read":
            store.read(KEY)
        elif operation == "count":
            store.count()
        else:
            store.create_schema()
    message = str(info.value)
    assert message.startswith(CONNECT_FAILED) and "schema" not in message
    assert "s3cret-pw" not in message and KEY not in message


async def test_async_unreachable_server_says_connect_failed_without_the_password() -> None:
    store = open_async_store(UNREACHABLE)
    with pytest.raises(StoreUnavailable) as info:
        await store.write(KEY, b"x", time.time() + 60)
    message = str(info.value)
    assert message.startswith(CONNECT_FAILED) and "schema" not in message
    assert "s3cret-pw" not in message


def wait_for_waiters(url: str, count: int, exclude: set[int]) -> set[int]:
    """Backends of this test's store blocked on a row lock (bounded poll, not a timing check)."""
    for _ in range(500):
        rows = sql(
            url,
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND wait_event_type = 'Lock'",
            (parse_url(url).table,),
        )
        pids = {pid for (pid,) in rows} - exclude
        if len(pids) >= count:
            return pids
        time.sleep(0.02)
    raise AssertionError("the store's statement never blocked on the row lock")


@pytest.mark.parametrize("operation", ["read", "write"])
def test_only_idempotent_statements_are_retried_when_the_connection_dies(
    url: str, operation: str
) -> None:
    store = open_store(url)
    store.write(KEY, b"x", time.time() + 60)
    outcome: list[object] = []

    def call() -> None:
        try:
            if operation == "read":
                outcome.append(store.read(KEY, LockRequest(new_token(), 30)))
            else:
                outcome.append(store.write(KEY, b"y", time.time() + 60))
        except StoreUnavailable as e:
            outcome.append(e)

    with psycopg.connect(parse_url(url).conninfo) as blocker:
        blocker.execute(f"SELECT 1 FROM {parse_url(url).table} FOR UPDATE")
        worker = threading.Thread(target=call)
        worker.start()
        first = wait_for_waiters(url, 1, set())
        sql(url, "SELECT pg_terminate_backend(%s, 5000)", (first.pop(),))
        if operation == "read":  # the read runs again on a fresh connection, blocks again
            wait_for_waiters(url, 1, set())
        else:
            worker.join(10)
        blocker.rollback()
    worker.join(10)
    if operation == "read":
        assert isinstance(outcome[0], Stored) and outcome[0].payload == b"x"
    else:  # a write that may have committed is never repeated: the caller hears of it
        assert isinstance(outcome[0], StoreUnavailable)
        assert "AdminShutdown" in str(outcome[0]) or "terminat" in str(outcome[0])
        got = store.read(KEY)
        assert isinstance(got, Stored) and got.payload == b"x"
    store.close()
