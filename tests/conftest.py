"""Fixtures shared by the whole suite: the store matrix (every store, sync and async)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from coatcheck import (
    AsyncSessionManager,
    Config,
    SessionManager,
    open_async_store,
    open_store,
)
from coatcheck.stores.base import AsyncStore, Store

from .services import require
from .stores import CASES, StoreCase

T = TypeVar("T")


async def aw(value: Awaitable[T] | T) -> T:
    """Await ``value`` if it is awaitable: lets one test body drive sync and async APIs."""
    if inspect.isawaitable(value):
        return await value  # type: ignore[no-any-return]
    return value


class Driver:
    """One store (sync or async) on one URL, and managers over it."""

    def __init__(self, case: StoreCase, url: str, asynchronous: bool) -> None:
        self.case = case
        self.url = url
        self.asynchronous = asynchronous
        self.store: Store | AsyncStore = open_async_store(url) if asynchronous else open_store(url)

    def manager(self, **options: Any) -> SessionManager | AsyncSessionManager:
        config = Config(**{"cookie_secure": True, "gc_probability": 0, **options})
        if self.asynchronous:
            assert isinstance(self.store, AsyncStore)
            return AsyncSessionManager(self.store, config)
        assert isinstance(self.store, Store)
        return SessionManager(self.store, config)

    def other_store(self) -> Store | AsyncStore:
        """A second store object on the same URL, as another app server would have."""
        if not self.case.shared:
            return self.store
        return open_async_store(self.url) if self.asynchronous else open_store(self.url)


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def case(request: pytest.FixtureRequest) -> StoreCase:
    c: StoreCase = request.param
    endpoint = c.endpoint()
    if endpoint is not None:
        require(*endpoint, c.name)
    return c


@pytest.fixture
def store_url(case: StoreCase, tmp_path: Path) -> Any:
    url = case.make_url(tmp_path)
    yield url
    if case.cleanup is not None:
        case.cleanup(url)


@pytest.fixture(params=["sync", "async"])
async def drv(
    case: StoreCase, store_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Driver]:
    d = Driver(case, store_url, request.param == "async")
    await aw(d.store.open())
    yield d
    await aw(d.store.close())
