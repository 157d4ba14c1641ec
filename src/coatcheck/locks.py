"""Lease, token and fencing rules shared by the stores that keep lock state themselves.

Stores with a server (Redis, SQL) express the same rules in their own query language;
memory, files and SQLite apply them here, inside their own critical section.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .contract import MUST_CREATE, MUST_EXIST, LockRequest
from .errors import LockLost, VersionMismatch


def new_token() -> str:
    """A random per-acquisition lock token."""
    return secrets.token_urlsafe(16)


@dataclass(slots=True)
class Row:
    """A stored session with its lock state."""

    payload: bytes
    expires_at: float
    version: int
    token: str | None = None
    lock_until: float = 0.0

    def locked(self, now: float) -> bool:
        return self.token is not None and self.lock_until > now


def lease_lost() -> LockLost:
    """The fencing refusal every store raises: a write whose lease ran out changes nothing."""
    return LockLost("the session lock's lease expired before the write; nothing was written")


def changed() -> VersionMismatch:
    """The optimistic refusal every store raises: the record is not the version read."""
    return VersionMismatch("the session changed since it was read")


def try_lock(row: Row | None, lock: LockRequest, now: float) -> bool:
    """Take the lease on ``row`` unless another token holds a live one."""
    if row is None:
        return True  # nothing to lock: strict mode will issue a fresh id
    if row.locked(now) and row.token != lock.token:
        return False
    row.token = lock.token
    row.lock_until = now + lock.lease
    return True


def check_write(row: Row | None, expect: int | None, token: str | None, now: float) -> None:
    """The fencing and version checks before a write; raises and changes nothing on failure."""
    if token is not None and (row is None or row.token != token or row.lock_until <= now):
        raise lease_lost()
    check_version(None if row is None else row.version, expect)


def check_version(current: int | None, expect: int | None) -> None:
    """The optimistic check: ``current`` is the stored version, None when nothing is stored.

    ``expect`` is a version, MUST_CREATE, MUST_EXIST or None (no check). Raises
    VersionMismatch when the stored record is not what the writer read.
    """
    if expect is None:
        return
    if expect == MUST_CREATE:
        ok = current is None
    elif expect == MUST_EXIST:
        ok = current is not None
    else:
        ok = current == expect
    if not ok:
        raise changed()


def holds(row: Row | None, token: str) -> bool:
    return row is not None and row.token == token


def backoff(
    first: float,
    cap: float,
    wait: float,
    clock: Callable[[], float] = time.time,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Delays for a bounded lock wait: exponential from ``first`` to ``cap``, full jitter.

    Stops once ``wait`` seconds have passed on ``clock`` since the first call, or once the
    delays handed out add up to ``wait`` (so a clock that stands still still ends the wait).
    """
    draw = (rng or _JITTER).uniform
    deadline = clock() + wait
    budget = wait
    delay = first
    while True:
        left = min(deadline - clock(), budget)
        if left <= 0:
            return
        step = min(draw(delay / 2, delay), left)
        budget -= step
        yield step
        delay = min(delay * 2, cap)


_JITTER = random.SystemRandom()


class PendingReleases:
    """Locks whose release failed while the store was down, to be released once it answers.

    Kept per manager (per process). Each entry is dropped once released or once its lease
    would have run out anyway; the list is bounded, so an outage cannot grow it without end.
    """

    LIMIT = 1024

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], float] = {}
        self._guard = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._held)

    def add(self, key: str, token: str, until: float) -> None:
        with self._guard:
            if len(self._held) < self.LIMIT:
                self._held[(key, token)] = until

    def take(self, now: float) -> list[tuple[str, str]]:
        """Every entry whose lease is still running, removed from the list."""
        with self._guard:
            held, self._held = self._held, {}
        return [pair for pair, until in held.items() if until > now]
