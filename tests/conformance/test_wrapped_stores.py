"""The conformance suite (coatcheck.testing) through the encrypted wrapper, sync and async.

Stores are opened by URL with ``?encrypt=env:...`` (so the multi-process tests' children open
the same wrapped store), plus one case built from Python objects. The wrapper must pass the
whole suite unchanged: encryption is invisible to everything above the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import open_async_store, open_store
from coatcheck.crypto import new_key
from coatcheck.stores.memory import AsyncMemoryStore, MemoryStore
from coatcheck.testing import StoreUnderTest, conformance_suite
from coatcheck.wrappers import AsyncEncryptedStore, EncryptedStore

from ..services import require
from ..stores import CASES, StoreCase

globals().update(conformance_suite())

KEYS_VARIABLE = "COATCHECK_TEST_ENCRYPTION_KEYS"
WRAPPED = ("memory", "sqlite", "redis", "postgresql", "mysql", "memcached")
KEYS = [new_key(), new_key()]  # two: a key list, sealing under the first


def _encrypted(url: str) -> str:
    return url + ("&" if "?" in url else "?") + f"encrypt=env:{KEYS_VARIABLE}"


@pytest.fixture(
    params=[c for c in CASES if c.name in WRAPPED] + ["objects"],
    ids=lambda c: getattr(c, "name", c),
)
def store_under_test(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StoreUnderTest]:
    monkeypatch.setenv(KEYS_VARIABLE, ",".join(KEYS))  # children inherit it
    if request.param == "objects":  # Manager(store=EncryptedStore(...)): no URL involved
        yield StoreUnderTest(
            "encrypted-objects",
            lambda: EncryptedStore(MemoryStore(), KEYS),
            lambda: AsyncEncryptedStore(AsyncMemoryStore(), KEYS),
            shared=False,
        )
        return
    case: StoreCase = request.param
    endpoint = case.endpoint()
    if endpoint is not None:
        require(*endpoint, case.name)
    inner = case.make_url(tmp_path)
    url = _encrypted(inner)
    yield StoreUnderTest(
        f"encrypted-{case.name}",
        lambda: open_store(url),
        lambda: open_async_store(url),
        url=url,
        shared=case.shared,
        exact_count=case.name != "memcached",
    )
    if case.cleanup is not None:
        case.cleanup(inner)


def test_the_suite_runs_through_the_wrapper(store_under_test: StoreUnderTest) -> None:
    """Guards the matrix itself: every case here really is wrapped."""
    sync, asynchronous = store_under_test.open_sync(), store_under_test.open_async()
    assert isinstance(sync, EncryptedStore) and isinstance(asynchronous, AsyncEncryptedStore)
