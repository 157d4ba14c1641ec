"""The per-user index under write races: lost compare-and-set races are retried with the
lock wait's jittered backoff, and an index that never stops changing gives IndexBusy."""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck import Config, SessionManager, VersionMismatch
from coatcheck.stores.memory import MemoryStore
from coatcheck.users import INDEX_WAIT, IndexBusy, index_key, logout_user

from .support.forwarding import Forwarding


class LosesIndexRaces(Forwarding):
    """A real store where another login wins the next ``losses`` writes of an index."""

    def __init__(self, inner: MemoryStore, losses: int) -> None:
        super().__init__(inner)
        self.losses = losses
        self.index_writes = 0

    def write(self, key: str, *args: Any, **kwargs: Any) -> int:
        if key == index_key("ada"):
            self.index_writes += 1
            if self.losses:
                self.losses -= 1
                raise VersionMismatch("another login changed the index first")
        return self.inner.write(key, *args, **kwargs)


def _logged_in(store: Any) -> SessionManager:
    manager = SessionManager(store, Config(gc_probability=0))
    with manager.start() as s:
        s.login("ada")
    return manager


def test_lost_index_races_are_retried_until_the_change_lands() -> None:
    store = LosesIndexRaces(MemoryStore(), losses=0)
    manager = _logged_in(store)
    assert len(manager.user_sessions("ada")) == 1
    store.losses, store.index_writes = 3, 0
    assert logout_user(store, "ada") == 1  # lost three races, then took the session out
    assert store.index_writes == 4
    assert manager.user_sessions("ada") == []


def test_an_index_that_never_stops_changing_gives_index_busy() -> None:
    store = LosesIndexRaces(MemoryStore(), losses=0)
    _logged_in(store)
    now = [store.clock()]

    def clock() -> float:  # the wait is bounded on the store's clock: let it run fast
        now[0] += 1.0
        return now[0]

    store.clock = clock
    store.losses = 10**6
    with pytest.raises(IndexBusy, match=f"gave up after {INDEX_WAIT:g}s"):
        logout_user(store, "ada")
    assert 1 < store.index_writes < 20  # retried, and bounded by the wait, not by a count
