"""What the conformance tests drive: one store (sync or async), managers over it, a clock."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..session import AsyncSessionManager, SessionManager
from ..stores.base import AsyncStore, Store


async def aw(value: Any) -> Any:
    """Await ``value`` if it is awaitable: lets one test body drive sync and async APIs."""
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True)
class StoreUnderTest:
    """A store the suite runs against, and what the suite may expect of it.

    ``url``: the store's URL, opened with ``open_store`` in child processes by the
    multi-process tests (None: those tests run their in-process variants).
    ``shared``: other processes see the same sessions (False for memory://).
    ``expires_itself``: the server drops expired records on its own, in real time, so GC
    removes nothing and the suite sleeps instead of moving a fake clock. A store that says
    so itself (``Store.expires_itself``, as Redis and Memcached do) needs no flag here.
    ``exact_count``: ``count()`` is exact (Memcached lists keys with a crawler that is not).
    """

    name: str
    open_sync: Callable[[], Store]
    open_async: Callable[[], AsyncStore]
    url: str | None = None
    shared: bool = True
    expires_itself: bool = False
    exact_count: bool = True


class FakeClock:
    """Real time plus an offset that tests move forward: deadlines pass without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Driver:
    """One store (sync or async) and managers over it, all on one clock."""

    def __init__(self, target: StoreUnderTest, asynchronous: bool) -> None:
        self.target = target
        self.asynchronous = asynchronous
        self.store: Store | AsyncStore = target.open_async() if asynchronous else target.open_sync()
        self.expires_itself = target.expires_itself or self.store.expires_itself
        self.clock = None if self.expires_itself else FakeClock()
        if self.clock is not None:
            self.store.clock = self.clock

    @property
    def multiprocess(self) -> bool:
        """Whether child processes can open the same store (a shared store with a URL)."""
        return self.target.shared and self.target.url is not None

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: on the fake clock, or for real where the server keeps time."""
        if self.clock is not None:
            self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    def manager(self, **options: Any) -> SessionManager | AsyncSessionManager:
        config = Config(**{"cookie_secure": True, "gc_probability": 0, **options})
        if self.asynchronous:
            assert isinstance(self.store, AsyncStore)
            return AsyncSessionManager(self.store, config, clock=self.clock)
        assert isinstance(self.store, Store)
        return SessionManager(self.store, config, clock=self.clock)
