"""Blocking work from async stores: off the event loop, unless it never blocks.

An async store source calls ``await arun_blocking(self, fn, *args)`` around each piece of
blocking work (a file lock, an SQLite transaction). scripts/unasync.py turns that into
``run_blocking(self, fn, *args)`` in the generated sync twin: a plain call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Blocking(Protocol):
    @property
    def blocks(self) -> bool:
        """False when the store's calls never wait on I/O or other processes (memory://)."""


async def arun_blocking(store: Blocking, fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """``fn(*args)`` in a worker thread, or inline when ``store.blocks`` is false."""
    if store.blocks:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


def run_blocking(store: Blocking, fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """The sync twin of :func:`arun_blocking`: a sync caller may block, so call ``fn``."""
    return fn(*args)
