"""Faults between the session layer and a real store: lost replies, failed releases.

The stores are real; a thin wrapper makes one call fail the way a network does (the store
ran the command, the reply never arrived) so the test can say exactly when.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import Config, LockTimeout, SessionManager, StoreUnavailable, open_store
from coatcheck.stores.base import LockRequest, ReadResult, Store

from .services import require
from .stores import CASES, StoreCase
from .support.forwarding import Forwarding


class Flaky(Forwarding):
    """A real store whose next lock-taking read loses its reply, or whose releases fail."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.lose_next_locked_read = False
        self.releases_fail = False
        self.release_calls = 0

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        result = self.inner.read(key, lock)
        if lock is not None and self.lose_next_locked_read:
            self.lose_next_locked_read = False
            raise StoreUnavailable("reply lost (timed out after the store ran the command)")
        return result

    def release(self, key: str, token: str) -> None:
        self.release_calls += 1
        if self.releases_fail:
            raise StoreUnavailable("store unreachable")
        self.inner.release(key, token)


SERVERS = [c for c in CASES if c.name in ("sqlite", "redis", "postgresql", "mysql", "memcached")]


@pytest.fixture(params=SERVERS, ids=lambda c: c.name)
def flaky(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flaky]:
    case: StoreCase = request.param
    endpoint = case.endpoint()
    if endpoint is not None:
        require(*endpoint, case.name)
    url = case.make_url(tmp_path)
    store = Flaky(open_store(url))
    yield store
    store.inner.close()
    if case.cleanup is not None:
        case.cleanup(url)


def _session(manager: SessionManager) -> str:
    s = manager.start()
    s["n"] = 1
    s.write_close()
    return s.id


def test_a_lock_taking_read_whose_reply_is_lost_leaves_no_lock(flaky: Flaky) -> None:
    manager = SessionManager(flaky, Config(gc_probability=0, lock_lease=30))
    sid = _session(manager)
    flaky.lose_next_locked_read = True
    with pytest.raises(StoreUnavailable):
        manager.start(sid)
    # The store took the lock before the reply was lost; it was given back at once, so the
    # user's next request does not wait out a 30 s lease.
    s = SessionManager(flaky, Config(gc_probability=0, lock_wait=0)).start(sid)
    assert s["n"] == 1
    s.abort()


def test_a_release_that_failed_during_an_outage_is_retried_when_the_store_answers(
    flaky: Flaky,
) -> None:
    manager = SessionManager(flaky, Config(gc_probability=0, lock_lease=30, lock_wait=0))
    sid = _session(manager)
    s = manager.start(sid)
    flaky.releases_fail = True
    s.abort()  # the release fails: the lock stays held in the store
    with pytest.raises(LockTimeout):  # while the store drops releases, the lock stays
        manager.start(sid)
    flaky.releases_fail = False
    again = manager.start(sid)  # the failed release is retried first: no 30 s lock-out
    assert again["n"] == 1
    again.abort()


def test_while_the_store_stays_down_a_request_tries_one_remembered_release_not_all(
    flaky: Flaky,
) -> None:
    manager = SessionManager(flaky, Config(gc_probability=0, lock_lease=30, lock_wait=0))
    sids = [_session(manager) for _ in range(3)]
    held = [manager.start(sid) for sid in sids]
    flaky.releases_fail = True
    for s in held:
        s.abort()  # three releases fail and are remembered
    flaky.release_calls = 0
    with pytest.raises(LockTimeout):
        manager.start(sids[0])  # still down: one release tried, the other two kept
    assert flaky.release_calls == 1
    flaky.releases_fail = False
    for sid in sids:  # once the store answers, every remembered lock is given back
        again = manager.start(sid)
        assert again["n"] == 1
        again.abort()
