"""Lock hand-over without a server: the session's wait loop, and the listener's wake-ups.

The wait loop around ``ops.WaitRelease`` is driven on the memory store, given a
``wait_for_release`` of its own: however a store answers, a waiter ends by lock_wait, even on
a clock that stands still, and a store without the method, or one that says it cannot tell
right now, is polled with backoff as before. The listener's wake-ups are driven with a feed
whose notices the test sends. tests/test_lock_handover.py runs the real stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from coatcheck import AsyncSessionManager, Config, LockTimeout, SessionManager
from coatcheck.ids import storage_key
from coatcheck.locks import new_token
from coatcheck.ops import WaitRelease
from coatcheck.stores._handover import AsyncHandover
from coatcheck.stores.base import LOCKED, LockRequest
from coatcheck.stores.memory import AsyncMemoryStore, MemoryStore

FROZEN = 1_000_000.0


def config(**options: float) -> Config:
    base = {"gc_probability": 0, "lock_wait": 0.5, "lock_backoff": 0.01, "lock_backoff_max": 0.01}
    return Config(cookie_secure=True, **{**base, **options})


class WakesAtOnce(MemoryStore):
    """Says a release happened every time it is asked: the worst a notifying store can do."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def wait_for_release(self, key: str, timeout: float) -> bool:
        self.timeouts.append(timeout)
        return True


class AsyncWakesAtOnce(AsyncMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    async def wait_for_release(self, key: str, timeout: float) -> bool:
        self.timeouts.append(timeout)
        return True


class CannotTell(MemoryStore):
    """A notifying store whose listener is down: it answers False, so the caller polls."""

    asked = 0

    def wait_for_release(self, key: str, timeout: float) -> bool:
        self.asked += 1
        return False


def held_session(m: SessionManager) -> str:
    s = m.start()
    s["n"] = 1
    s.write_close()
    taken = m.store.read(storage_key(s.id), LockRequest(new_token(), 3600))  # held for good
    assert taken is not LOCKED
    return s.id


def test_a_store_that_always_wakes_at_once_still_times_out_on_a_frozen_clock() -> None:
    store = WakesAtOnce()
    m = SessionManager(store, config(), clock=lambda: FROZEN)
    sid = held_session(m)
    with pytest.raises(LockTimeout):
        m.start(sid)
    # every wake-up counted at least one backoff delay (>= 0.005 s with jitter) of 0.5 s
    assert 1 <= len(store.timeouts) <= 0.5 / 0.005 + 1
    assert all(0 <= t <= 0.5 for t in store.timeouts)  # never asked to wait past lock_wait


async def test_async_a_store_that_always_wakes_at_once_still_times_out() -> None:
    store = AsyncWakesAtOnce()
    m = AsyncSessionManager(store, config(), clock=lambda: FROZEN)
    s = await m.start()
    s["n"] = 1
    await s.write_close()
    assert await store.read(storage_key(s.id), LockRequest(new_token(), 3600)) is not LOCKED
    with pytest.raises(LockTimeout):
        await m.start(s.id)
    assert 1 <= len(store.timeouts) <= 0.5 / 0.005 + 1


def test_a_store_that_cannot_tell_is_polled_with_backoff() -> None:
    store = CannotTell()
    m = SessionManager(store, config(lock_wait=0.1), clock=lambda: FROZEN)
    sid = held_session(m)
    with pytest.raises(LockTimeout):
        m.start(sid)
    assert store.asked >= 2  # asked before each poll, and each poll slept a backoff delay


def test_wait_release_sleeps_the_poll_delay_without_the_method() -> None:
    assert WaitRelease("k" * 64, 0.001, 5.0).run(MemoryStore()) == (False, 0.001)


async def test_async_wait_release_sleeps_the_poll_delay_without_the_method() -> None:
    assert await WaitRelease("k" * 64, 0.001, 5.0).arun(AsyncMemoryStore()) == (False, 0.001)


def test_lock_wait_zero_never_waits() -> None:
    store = WakesAtOnce()
    m = SessionManager(store, config(lock_wait=0))
    sid = held_session(m)
    with pytest.raises(LockTimeout):
        m.start(sid)
    assert store.timeouts == []


# --- the listener's side, with a feed of our own making (no server) ----------------------


class QueueFeed:
    """A feed whose notices the test sends: keys put in ``notices`` are heard in order."""

    def __init__(self) -> None:
        self.notices: asyncio.Queue[str | None] = asyncio.Queue()

    async def open(self) -> QueueFeed:
        return self

    async def receive(self, timeout: float) -> AsyncIterator[str | None]:
        yield await self.notices.get()

    async def close(self) -> None:
        pass


async def test_a_woken_waiter_that_is_cancelled_wakes_the_next_one() -> None:
    feed = QueueFeed()
    handover = AsyncHandover(feed.open, "test", wake_one=True)

    async def held() -> float | None:
        return 30.0  # the lock is held, with a long lease: only a notice ends the wait

    first = asyncio.ensure_future(handover.wait("k", 30, held))
    second = asyncio.ensure_future(handover.wait("k", 30, held))
    while len(handover._waiters.by_key.get("k", ())) < 2:
        await asyncio.sleep(0.001)
    feed.notices.put_nowait("k")  # wakes the first waiter only...
    await asyncio.sleep(0)  # ...once the listener has run
    first.cancel()  # woken, but gone before it could read: the wake-up must not be lost
    assert await second is True
    assert first.cancelled()
    assert (handover.stats.heard, handover.stats.woken) == (1, 1)
    await handover.close()


async def test_wake_one_wakes_one_and_wake_all_wakes_all() -> None:
    for wake_one, expected in ((True, 1), (False, 3)):
        feed = QueueFeed()
        handover = AsyncHandover(feed.open, "test", wake_one=wake_one)

        async def held() -> float | None:
            return 0.3

        waits = [asyncio.ensure_future(handover.wait("k", 30, held)) for _ in range(3)]
        while len(handover._waiters.by_key.get("k", ())) < 3:
            await asyncio.sleep(0.001)
        feed.notices.put_nowait("k")
        await asyncio.gather(*waits)  # the others wake when the 0.3 s lease ends
        assert handover.stats.woken == expected
        assert handover.stats.timed_out == 3 - expected
        await handover.close()
