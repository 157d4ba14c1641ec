"""Every store validates storage keys the same way (``ids.check_storage_key``), sync and async.

A key that is not 64 lower-case hex characters never reaches a store's files, rows or
server keys: an upper-cased key is not another spelling of the same session (PostgreSQL's
``bytes.fromhex`` would read it as one), and braces, slashes or control characters never
shape a Redis hash tag, a path or a memcached command.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck import open_async_store, open_store
from coatcheck.ids import storage_key
from coatcheck.stores.base import AsyncStore, LockRequest, Stored

from .services import require
from .stores import CASES, StoreCase

KEY = storage_key("A" * 43)
LATER = time.time() + 3600
BAD_KEYS = [
    pytest.param(KEY.upper(), id="upper"),
    pytest.param(KEY[:-1], id="short"),
    pytest.param(KEY + "0", id="long"),
    pytest.param("g" * 64, id="not-hex"),
    pytest.param("{" + KEY[2:] + "}", id="braces"),
    pytest.param("../" + KEY[3:], id="path"),
    pytest.param("", id="empty"),
]
CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("read", ()),
    ("read", (LockRequest("t", 30),)),
    ("write", (b"x", LATER)),
    ("update_timestamp", (LATER,)),
    ("release", ("t",)),
    ("destroy", ()),
    ("validate_id", ()),
]


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    case: StoreCase = request.param
    endpoint = case.endpoint()
    if endpoint is not None:
        require(*endpoint, case.name)
    made = case.make_url(tmp_path)
    yield made
    if case.cleanup is not None:
        case.cleanup(made)


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_every_store_refuses_what_is_not_a_storage_key(url: str, bad: str) -> None:
    store = open_store(url)
    try:
        store.write(KEY, b"kept", LATER)  # the real key's record, which stays alone
        for method, args in CALLS:
            with pytest.raises(ValueError, match="storage key"):
                getattr(store, method)(bad, *args)
        found = store.read(KEY)
        assert isinstance(found, Stored) and found.payload == b"kept"
        assert store.count() == 1
    finally:
        store.close()


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_every_async_store_refuses_what_is_not_a_storage_key(url: str, bad: str) -> None:
    async def check(store: AsyncStore) -> None:
        try:
            await store.write(KEY, b"kept", LATER)
            for method, args in CALLS:
                with pytest.raises(ValueError, match="storage key"):
                    await getattr(store, method)(bad, *args)
            found = await store.read(KEY)
            assert isinstance(found, Stored) and found.payload == b"kept"
            assert await store.count() == 1
        finally:
            await store.close()

    asyncio.run(check(open_async_store(url)))
