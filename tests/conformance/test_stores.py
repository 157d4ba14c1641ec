"""The conformance suite (coatcheck.testing) against every store, sync and async."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import open_async_store, open_store
from coatcheck.testing import StoreUnderTest, conformance_suite

from ..services import require
from ..stores import CASES, StoreCase

globals().update(conformance_suite())


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def store_under_test(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreUnderTest]:
    case: StoreCase = request.param
    endpoint = case.endpoint()
    if endpoint is not None:
        require(*endpoint, case.name)
    url = case.make_url(tmp_path)
    yield StoreUnderTest(
        case.name,
        lambda: open_store(url),
        lambda: open_async_store(url),
        url=url,
        shared=case.shared,
        exact_count=case.name != "memcached",
    )
    if case.cleanup is not None:
        case.cleanup(url)
