"""Lease, token and fencing rules shared by the stores that keep lock state themselves.

Stores with a server (Redis, SQL) express the same rules in their own query language;
memory, files and SQLite apply them here, inside their own critical section.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import LockLost, VersionMismatch
from .stores.base import MUST_CREATE, MUST_EXIST, LockRequest


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
        raise LockLost("the session lock's lease expired before the write; nothing was written")
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
        raise VersionMismatch("the session changed since it was read")


def holds(row: Row | None, token: str) -> bool:
    return row is not None and row.token == token


def backoff(first: float, cap: float, wait: float) -> Iterator[float]:
    """Delays for a bounded lock wait: exponential from ``first`` to ``cap``, full jitter.

    Stops yielding once ``wait`` seconds have passed since the first call.
    """
    deadline = time.monotonic() + wait
    delay = first
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        jittered = random.uniform(delay / 2, delay)  # ok: not security (retry jitter)
        yield min(jittered, left)
        delay = min(delay * 2, cap)
