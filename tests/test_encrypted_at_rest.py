"""What a leaked dump shows: the raw rows and keys of real stores hold no session data.

A session with a marker string is written through ``?encrypt=env:...``; the test then reads
the SQLite file, the PostgreSQL table and the Redis keys with their own clients, not through
coatcheck, and asserts the marker is absent and every payload is sealed.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from coatcheck import Config, SessionManager, open_store
from coatcheck.crypto import new_key
from coatcheck.stores.base import Store

from .services import POSTGRES_URL, REDIS_URL, require
from .support import postgresql as pg_support
from .support import redis as redis_support

MARKER = "leaked-dump-marker-41c9"
VARIABLE = "COATCHECK_TEST_AT_REST_KEYS"


def _with(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


def write_marker(store: Store) -> str:
    m = SessionManager(store, Config(gc_probability=0, cookie_secure=True))
    s = m.start()
    s["note"] = MARKER
    s.write_close()
    again = m.start(s.id)
    assert again["note"] == MARKER  # readable through the wrapper
    again.abort()
    sid: str = s.id
    return sid


def assert_sealed(payloads: list[bytes], sid: str) -> None:
    assert payloads, "the raw store holds nothing: the test read the wrong place"
    for payload in payloads:
        assert MARKER.encode() not in payload and sid.encode() not in payload
        assert payload[0] == 0xC1  # the sealed format, not a JSON record


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, new_key())


def test_sqlite_rows_hold_no_plaintext(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with open_store(_with(f"sqlite:///{db}", f"encrypt=env:{VARIABLE}")) as store:
        sid = write_marker(store)
    with sqlite3.connect(db) as conn:
        payloads = [bytes(row[0]) for row in conn.execute("SELECT payload FROM coatcheck_sessions")]
    assert_sealed(payloads, sid)
    assert MARKER.encode() not in db.read_bytes()


@pytest.fixture
def pg_url() -> Iterator[str]:
    require("127.0.0.1", 5432, "postgresql")
    table = "cc_" + uuid.uuid4().hex[:12]
    url = _with(POSTGRES_URL, f"table={table}")
    yield url
    pg_support.drop_namespace(url)


def test_postgresql_rows_hold_no_plaintext(pg_url: str) -> None:
    with open_store(_with(pg_url, f"encrypt=env:{VARIABLE}")) as store:
        sid = write_marker(store)
    table = pg_url.rsplit("table=", 1)[1]
    conninfo = POSTGRES_URL.split("?")[0]
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(f"SELECT payload FROM {table}").fetchall()
    assert_sealed([bytes(row[0]) for row in rows], sid)


@pytest.fixture
def redis_url() -> Iterator[str]:
    require("127.0.0.1", 6379, "redis")
    url = _with(REDIS_URL, f"prefix=cc_{uuid.uuid4().hex[:12]}:")
    yield url
    redis_support.drop_namespace(url)


def test_redis_keys_hold_no_plaintext(redis_url: str) -> None:
    with open_store(_with(redis_url, f"encrypt=env:{VARIABLE}")) as store:
        sid = write_marker(store)
    prefix = redis_url.rsplit("prefix=", 1)[1]
    client = redis.Redis.from_url(REDIS_URL)
    try:
        names = list(client.scan_iter(match=prefix + "*"))
        payloads = [client.hget(name, "p") for name in names if client.type(name) == b"hash"]
        everything = b"".join(
            value for name in names if client.type(name) == b"hash" for value in client.hvals(name)
        )
    finally:
        client.close()
    assert_sealed([p for p in payloads if p is not None], sid)
    assert MARKER.encode() not in everything
