"""The store conformance suite, importable: run every store test against your own store.

Every coatcheck store passes this suite, sync and async; a custom store runs the same tests
with one line in a pytest module (pytest and pytest-asyncio installed)::

    from coatcheck.testing import conformance_suite

    globals().update(conformance_suite("mystore://localhost/sessions"))

A URL is opened with :func:`~coatcheck.open_store` / :func:`~coatcheck.open_async_store`
(register the scheme first, see :func:`coatcheck.stores.register`); or pass the stores
themselves: ``conformance_suite(open_sync=MyStore, open_async=MyAsyncStore)``. The tests
use a fake clock to let deadlines pass without sleeping, unless ``expires_itself`` says the
store's server expires records in real time.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from ..stores import open_async_store, open_store
from ..stores.base import AsyncStore, Store
from . import lifecycle, locking, users
from ._driver import Driver, FakeClock, StoreUnderTest, aw

__all__ = ["Driver", "FakeClock", "StoreUnderTest", "aw", "conformance_suite", "suite_tests"]


def suite_tests() -> dict[str, Callable[..., Any]]:
    """Every test of the suite by name; each takes the ``drv`` fixture."""
    found: dict[str, Callable[..., Any]] = {}
    for module in (lifecycle, locking, users):
        for name, fn in vars(module).items():
            if name.startswith("test_") and inspect.isfunction(fn):
                found[name] = pytest.mark.asyncio(fn) if inspect.iscoroutinefunction(fn) else fn
    return found


@pytest.fixture(params=["sync", "async"])
async def drv(
    store_under_test: StoreUnderTest, request: pytest.FixtureRequest
) -> AsyncIterator[Driver]:
    """The store under test, opened sync and then async, closed after the test."""
    d = Driver(store_under_test, request.param == "async")
    await aw(d.store.open())
    yield d
    await aw(d.store.close())


def conformance_suite(
    url: str | None = None,
    *,
    open_sync: Callable[[], Store] | None = None,
    open_async: Callable[[], AsyncStore] | None = None,
    name: str = "store",
    shared: bool = True,
    expires_itself: bool = False,
    exact_count: bool = True,
) -> dict[str, Any]:
    """The suite's tests and fixtures, to put in a test module's globals.

    With neither ``url`` nor the openers, the module supplies its own ``store_under_test``
    fixture (a :class:`StoreUnderTest`), e.g. parametrized over several stores.
    """
    names: dict[str, Any] = {**suite_tests(), "drv": drv}
    if url is None and open_sync is None and open_async is None:
        return names
    if url is not None:
        at = url
        open_sync = open_sync or (lambda: open_store(at))
        open_async = open_async or (lambda: open_async_store(at))
    if open_sync is None or open_async is None:
        raise ValueError("conformance_suite needs a url, or both open_sync and open_async")
    target = StoreUnderTest(name, open_sync, open_async, url, shared, expires_itself, exact_count)

    @pytest.fixture
    def store_under_test() -> Iterator[StoreUnderTest]:
        yield target

    names["store_under_test"] = store_under_test
    return names
