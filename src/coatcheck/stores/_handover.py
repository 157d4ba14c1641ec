"""Lock hand-over: a waiter sleeps until the store says the lock was released.

Stores that can tell their clients about a release (Redis pub/sub, PostgreSQL LISTEN/NOTIFY)
keep one listener per store and process: a thread for a sync store (:class:`Handover`), a task
for an asyncio one (:class:`AsyncHandover`), reading one subscription (a :class:`Feed`) and
waking the waiters of each key it hears about. Their ``wait_for_release(key, timeout)`` is
:meth:`Handover.wait` with the store's own *announcement*: a call that marks the lock as
waited for, so that whoever releases it sends a notice (nobody sends one for a lock nobody
waits for), and returns the seconds left on its lease, or None when it is free already.

The order closes the lost-wakeup race: the waiter registers and the subscription is live
before it announces, and the announcement checks the lock in the same atomic step as it
marks it. A release after the check sends a notice this listener receives; a release before
it is seen by the check, and the waiter returns at once to read again.

A notice is only a hint: the session reads again after every wake-up, and may lose the lock
to another waiter. A waiter also wakes when the holder's lease runs out (a crashed holder
sends nothing), and at least every :data:`RECHECK` seconds. A listener that cannot connect,
or whose connection fails, wakes every waiter and makes ``wait`` answer False until it has
been started again (at most once per :data:`RETRY_AFTER` seconds): the session then polls
with backoff, as it does for stores that cannot notify. Nothing here ever waits unbounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger("coatcheck")

RECHECK = 2.0
"""The longest a notified waiter sleeps before reading again, should a notice go missing
without its connection failing (a failover to a server that never saw the subscription)."""
RETRY_AFTER = 1.0
"""After a listener failed, waiters poll for this long before one starts a new listener."""
STARTUP = 2.0
"""The longest a waiter waits for a listener to connect before it polls instead."""
POLL = 0.25
"""How often a sync listener looks up from its feed to see whether the store is closing."""
_AFTER_LEASE = 0.005  # wake just after the holder's lease ends, not just before


class Feed(Protocol):
    """A live subscription to a store's release notices (connected and subscribed)."""

    def receive(self, timeout: float) -> Iterator[str | None]:
        """The keys released, as notices arrive, for up to ``timeout`` seconds.

        None means notices may have been lost (the connection was re-established): every
        waiter is woken to read again. Raises when the subscription is gone.
        """
        ...

    def close(self) -> None: ...


class AsyncFeed(Protocol):
    """The asyncio twin of :class:`Feed`."""

    def receive(self, timeout: float) -> AsyncIterator[str | None]: ...

    async def close(self) -> None: ...


@dataclass
class Stats:
    """What one store's hand-over did in this process (for tests and monitoring)."""

    heard: int = 0
    """Release notices received (one per released key)."""
    woken: int = 0
    """Waits ended by a wake-up: a notice, or a listener that reconnected or failed."""
    free: int = 0
    """Waits that found the lock already free when they announced themselves."""
    timed_out: int = 0
    """Waits that ran to their bound: the timeout, the holder's lease, or RECHECK."""
    polled: int = 0
    """Waits refused at once (no listener, or the announcement failed): the caller polled."""
    gaps: int = 0
    """Re-subscriptions after a dropped connection (every waiter is woken to read again)."""
    failures: int = 0
    """Listeners that could not connect or whose connection failed."""


E = TypeVar("E", threading.Event, asyncio.Event)


class _Waiters(Generic[E]):
    """Who waits for which key, in this process, in order of arrival; the listener wakes
    them by key: all of them, or with ``one`` only the first not woken yet."""

    def __init__(self, one: bool) -> None:
        self.one = one
        self.by_key: dict[str, dict[E, None]] = {}  # an ordered set

    def add(self, key: str, event: E) -> None:
        self.by_key.setdefault(key, {})[event] = None

    def remove(self, key: str, event: E) -> None:
        events = self.by_key.get(key)
        if events is not None:
            events.pop(event, None)
            if not events:
                del self.by_key[key]

    def wake(self, key: str | None) -> None:
        """Wake the waiters of ``key`` (or its first one); None wakes everyone."""
        if key is None:
            for events in self.by_key.values():
                for event in events:
                    event.set()
            return
        for event in self.by_key.get(key, ()):
            if not event.is_set():
                event.set()
                if self.one:
                    return


def _warn(where: str, error: BaseException) -> None:
    """Say that notices stopped, naming the error's type only (its text may name a host)."""
    log.warning(
        "%s: lock release notices stopped (%s); waiters poll until they resume",
        where,
        type(error).__name__,
    )


def _bound(timeout: float, lease: float) -> float:
    """How long to sleep: the caller's timeout, the holder's lease, RECHECK."""
    return max(0.0, min(timeout, lease + _AFTER_LEASE, RECHECK))


class _Listener:
    """One sync listener's life: started, ready (live or not), stopped."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.live = False
        self.stopped = False
        self.thread: threading.Thread | None = None


class Handover:
    """Release notices for a sync store: one listener thread, shared by every waiter."""

    def __init__(self, connect: Callable[[], Feed], where: str, *, wake_one: bool = False) -> None:
        """``connect`` opens and subscribes a feed (raising when it cannot); ``where``
        names the store in log messages (never a credential).

        ``wake_one``: a notice wakes only the first waiter of its key in this process, not
        all of them (no herd of reads, one of which wins). Only for a store whose lock-taking
        read keeps the lock flagged while :meth:`waiting` says others still wait here, so
        the next release sends a notice for them too.
        """
        self._connect = connect
        self._where = where
        self._wake_one = wake_one
        self._orphans: list[object] = []
        self.stats = Stats()
        self._start_fresh()

    def _start_fresh(self) -> None:
        self._guard = threading.Lock()
        self._waiters: _Waiters[threading.Event] = _Waiters(self._wake_one)
        self._listener: _Listener | None = None
        self._failed_at = -math.inf
        self._pid = os.getpid()

    @property
    def live(self) -> bool:
        """Whether a listener is connected now (for tests and stats)."""
        listener = self._listener
        return listener is not None and listener.live and self._pid == os.getpid()

    def waiting(self, key: str) -> bool:
        """Whether requests in this process are waiting for the lock on ``key``."""
        return key in self._waiters.by_key

    def wait(self, key: str, timeout: float, announce: Callable[[], float | None]) -> bool:
        """Sleep until ``key``'s lock is released, its lease ends, or ``timeout`` passes.

        ``announce`` marks the lock as waited for and returns the seconds left on its lease
        (None: the lock is free now). False, at once, when no listener is live: poll instead.
        """
        stats = self.stats
        listener = self._ready_listener(timeout)
        if listener is None:
            stats.polled += 1
            return False
        event = threading.Event()
        with self._guard:
            if not listener.live:  # it failed since: its wake-up of everyone missed this one
                stats.polled += 1
                return False
            self._waiters.add(key, event)
        try:
            try:
                lease = announce()
            except Exception:  # the read that follows reports a store that is down
                stats.polled += 1
                return False
            if lease is None:
                stats.free += 1
            elif event.wait(_bound(timeout, lease)):
                stats.woken += 1
            else:
                stats.timed_out += 1
            return True
        except BaseException:
            with self._guard:  # woken but leaving without reading: wake the next one instead
                self._waiters.remove(key, event)
                if event.is_set():
                    self._waiters.wake(key)
            raise
        finally:
            with self._guard:
                self._waiters.remove(key, event)

    def _ready_listener(self, timeout: float) -> _Listener | None:
        with self._guard:
            if self._pid != os.getpid():  # forked: the listener thread stayed in the parent
                self._orphans.append(self._listener)  # never finalized here: its socket is theirs
                self._start_fresh()
            listener = self._listener
            if listener is None:
                if time.monotonic() - self._failed_at < RETRY_AFTER:
                    return None
                listener = self._listener = _Listener()
                listener.thread = threading.Thread(
                    target=self._listen, args=(listener,), name="coatcheck-handover", daemon=True
                )
                listener.thread.start()
        if not listener.ready.wait(min(timeout, STARTUP)):
            return None
        return listener if listener.live else None

    def _listen(self, listener: _Listener) -> None:
        try:
            feed = self._connect()
        except Exception as e:
            self._lost(listener, e)
            return
        listener.live = True
        listener.ready.set()
        error: BaseException | None = None
        try:
            while not listener.stopped:
                for key in feed.receive(POLL):
                    self._heard(key)
                    with self._guard:
                        self._waiters.wake(key)
        except Exception as e:
            error = e
        finally:
            with contextlib.suppress(Exception):
                feed.close()
            self._lost(listener, error)

    def _heard(self, key: str | None) -> None:
        if key is None:
            self.stats.gaps += 1
        else:
            self.stats.heard += 1

    def _lost(self, listener: _Listener, error: BaseException | None) -> None:
        """The listener is gone: wake everyone, so nobody sleeps on a dead subscription."""
        listener.live = False
        with self._guard:
            if self._listener is listener:
                self._listener = None
                if not listener.stopped:
                    self._failed_at = time.monotonic()
            self._waiters.wake(None)
        listener.ready.set()
        if error is not None and not listener.stopped:
            self.stats.failures += 1
            _warn(self._where, error)

    def close(self) -> None:
        """Stop the listener and close its connection (a later wait starts another, as a
        closed store's next call opens new connections)."""
        with self._guard:
            listener, self._listener = self._listener, None
            self._waiters.wake(None)
        if listener is None or self._pid != os.getpid():
            return
        listener.stopped = True
        if listener.thread is not None:
            listener.thread.join(POLL + STARTUP + 5)


class _AsyncListener:
    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.live = False
        self.stopped = False
        self.task: asyncio.Task[None] | None = None


class AsyncHandover:
    """Release notices for an asyncio store: one listener task on the store's event loop."""

    def __init__(
        self, connect: Callable[[], Awaitable[AsyncFeed]], where: str, *, wake_one: bool = False
    ) -> None:
        self._connect = connect
        self._where = where
        self._wake_one = wake_one
        self.stats = Stats()
        self._waiters: _Waiters[asyncio.Event] = _Waiters(wake_one)
        self._listener: _AsyncListener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed_at = -math.inf

    @property
    def live(self) -> bool:
        listener = self._listener
        return listener is not None and listener.live

    def waiting(self, key: str) -> bool:
        return key in self._waiters.by_key

    async def wait(
        self, key: str, timeout: float, announce: Callable[[], Awaitable[float | None]]
    ) -> bool:
        """:meth:`Handover.wait`, awaited."""
        stats = self.stats
        listener = await self._ready_listener(timeout)
        if listener is None:
            stats.polled += 1
            return False
        event = asyncio.Event()
        self._waiters.add(key, event)
        try:
            try:
                lease = await announce()
            except Exception:
                stats.polled += 1
                return False
            if lease is None:
                stats.free += 1
                return True
            try:
                async with asyncio.timeout(_bound(timeout, lease)):
                    await event.wait()
            except TimeoutError:
                stats.timed_out += 1
            else:
                stats.woken += 1
            return True
        except BaseException:  # cancelled: if woken, wake the next one instead
            self._waiters.remove(key, event)
            if event.is_set():
                self._waiters.wake(key)
            raise
        finally:
            self._waiters.remove(key, event)

    async def _ready_listener(self, timeout: float) -> _AsyncListener | None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a store moved to another loop: start over on this one
            self._loop, self._listener, self._waiters = loop, None, _Waiters(self._wake_one)
        listener = self._listener
        if listener is None:
            if time.monotonic() - self._failed_at < RETRY_AFTER:
                return None
            listener = self._listener = _AsyncListener()
            listener.task = loop.create_task(self._listen(listener), name="coatcheck-handover")
        if not listener.ready.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(timeout, STARTUP)):
                    await listener.ready.wait()
        return listener if listener.live else None

    async def _listen(self, listener: _AsyncListener) -> None:
        try:
            feed = await self._connect()
        except Exception as e:
            self._lost(listener, e)
            return
        listener.live = True
        listener.ready.set()
        error: BaseException | None = None
        try:
            while True:
                async for key in feed.receive(60.0):
                    if key is None:
                        self.stats.gaps += 1
                    else:
                        self.stats.heard += 1
                    self._waiters.wake(key)
        except Exception as e:
            error = e
        finally:
            self._lost(listener, error)
            with contextlib.suppress(Exception):
                await feed.close()

    def _lost(self, listener: _AsyncListener, error: BaseException | None) -> None:
        listener.live = False
        if self._listener is listener:
            self._listener = None
            if not listener.stopped:
                self._failed_at = time.monotonic()
        self._waiters.wake(None)
        listener.ready.set()
        if error is not None and not listener.stopped:
            self.stats.failures += 1
            _warn(self._where, error)

    async def close(self) -> None:
        """Cancel the listener task and close its connection (see :meth:`Handover.close`)."""
        listener, self._listener = self._listener, None
        self._waiters.wake(None)
        if listener is None or listener.task is None:
            return
        listener.stopped = True
        task = listener.task
        try:
            same_loop = asyncio.get_running_loop() is task.get_loop()
        except RuntimeError:
            same_loop = False
        if same_loop:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
