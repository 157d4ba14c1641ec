"""The conformance suite (coatcheck.testing) through the migrating wrapper, sync and async.

Stores are opened by URL: the old store's URL with ``?migrate_to=env:...``, the variable
holding the new store's URL (so the multi-process tests' children open the same pair), plus
one case built from Python objects. The wrapper must pass the whole suite unchanged: a
migration in progress is invisible to everything above the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import open_async_store, open_store
from coatcheck.stores.memory import AsyncMemoryStore, MemoryStore
from coatcheck.testing import StoreUnderTest, conformance_suite
from coatcheck.wrappers import AsyncMigratingStore, MigratingStore

from ..services import require
from ..stores import CASES, StoreCase

globals().update(conformance_suite())

TARGET_VARIABLE = "COATCHECK_TEST_MIGRATE_TO"
PAIRS = (("sqlite", "postgresql"), ("redis", "sqlite"), ("postgresql", "redis"))
BY_NAME = {c.name: c for c in CASES}


def _pairs() -> list[tuple[StoreCase, StoreCase] | str]:
    found: list[tuple[StoreCase, StoreCase] | str] = [
        (BY_NAME[old], BY_NAME[new]) for old, new in PAIRS if old in BY_NAME and new in BY_NAME
    ]
    return [*found, "objects"]


def _name(param: object) -> str:
    if isinstance(param, tuple):
        return f"{param[0].name}-to-{param[1].name}"
    return str(param)


@pytest.fixture(params=_pairs(), ids=_name)
def store_under_test(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StoreUnderTest]:
    if request.param == "objects":  # MigratingStore(old, new) from objects: no URL involved
        yield StoreUnderTest(
            "migrating-objects",
            lambda: MigratingStore(MemoryStore(), MemoryStore()),
            lambda: AsyncMigratingStore(AsyncMemoryStore(), AsyncMemoryStore()),
            shared=False,
        )
        return
    old_case, new_case = request.param
    for case in (old_case, new_case):
        endpoint = case.endpoint()
        if endpoint is not None:
            require(*endpoint, case.name)
    old_url = old_case.make_url(tmp_path / "old")
    new_url = new_case.make_url(tmp_path / "new")
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    monkeypatch.setenv(TARGET_VARIABLE, new_url)  # children inherit it
    url = old_url + ("&" if "?" in old_url else "?") + f"migrate_to=env:{TARGET_VARIABLE}"
    yield StoreUnderTest(
        f"migrating-{_name(request.param)}",
        lambda: open_store(url),
        lambda: open_async_store(url),
        url=url,
        shared=old_case.shared and new_case.shared,
        exact_count=old_case.name != "memcached",
    )
    for case, made in ((old_case, old_url), (new_case, new_url)):
        if case.cleanup is not None:
            case.cleanup(made)


def test_the_suite_runs_through_the_wrapper(store_under_test: StoreUnderTest) -> None:
    """Guards the matrix itself: every case here really is wrapped."""
    sync, asynchronous = store_under_test.open_sync(), store_under_test.open_async()
    assert isinstance(sync, MigratingStore) and isinstance(asynchronous, AsyncMigratingStore)
