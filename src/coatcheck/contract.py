"""The contract types every layer shares: what a store returns and what it is asked.

They sit at the bottom of the package: the engine, the lease rules (:mod:`coatcheck.locks`)
and every store import them from here, and this module imports nothing of coatcheck's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

MUST_CREATE: Final = 0
"""``expect`` value for a write that may only create a new record (a fresh id)."""
MUST_EXIST: Final = -1
"""``expect`` value for a write that may only replace an existing record, any version."""


@dataclass(frozen=True, slots=True)
class Stored:
    """What a read returns: the payload as written, its idle deadline and its version."""

    payload: bytes
    expires_at: float
    version: int


@dataclass(frozen=True, slots=True)
class LockRequest:
    """Take the session lock with this random token for ``lease`` seconds."""

    token: str
    lease: float


@dataclass(frozen=True, slots=True)
class Meta:
    """One session as the admin operations see it (no payload, no raw id)."""

    key: str
    expires_at: float
    size: int
    locked: bool


class _Locked(enum.Enum):
    LOCKED = "locked"


LOCKED: Final = _Locked.LOCKED
"""Returned by ``read`` when another request holds a live lease on the session."""

ReadResult = Stored | None | _Locked


def as_stored(result: object) -> Stored | None:
    """A read's result as a record, or None: no record, and :data:`LOCKED` too, for readers
    that take no lock (listings, ``read_many``), where another request's lock means nothing."""
    return result if isinstance(result, Stored) else None
