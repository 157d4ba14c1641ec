"""End to end: 8 concurrent requests sharing one session, under waitress, lose nothing.

The app (tests/web/wsgi_burst.py) runs in a waitress subprocess with 8 threads, over a
store shared by all threads (an SQLite file; Redis too). Each request touches the session,
then sleeps 50 ms. Only counts and ordering are asserted; bench/bench_burst_wsgi.py times it.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

pytest.importorskip("waitress")

from tests.services import REDIS_URL, require
from tests.web.wsgi_burst import THREADS, burst, call, seed, serve


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('burst')}/sessions.db"
    else:
        parts = urlsplit(REDIS_URL)
        require(parts.hostname or "127.0.0.1", parts.port or 6379, "redis")
        url = f"{REDIS_URL}?prefix=cc_burst_{uuid.uuid4().hex[:12]}:"
    try:
        with serve(url) as base:
            yield base
    finally:
        if request.param == "redis":
            from tests.support.redis import drop_namespace

            drop_namespace(url)


def state(base: str, sid: str) -> dict[str, object]:
    status, body, cookie = call(base, "/state", sid)
    assert status == 200 and cookie is None
    assert isinstance(body, dict)
    return body


def test_exclusive_with_early_release_keeps_every_increment(server: str) -> None:
    sid = seed(server)
    results = burst(server, sid, ["/incr?early=1"] * THREADS)
    assert [status for status, _ in results] == [200] * THREADS
    # each request saw the value the one before it wrote: no lost update
    assert sorted(body["seen"] for _, body in results) == list(range(THREADS))
    assert state(server, sid)["n"] == THREADS


def test_exclusive_serializes_requests(server: str) -> None:
    sid = seed(server)
    results = burst(server, sid, ["/incr"] * THREADS)
    assert [status for status, _ in results] == [200] * THREADS
    assert state(server, sid)["n"] == THREADS
    held = sorted((body["held"], body["seen"]) for _, body in results)
    # the lock holds from first touch to start_response: intervals follow one another...
    for (before, _), (after, _) in itertools.pairwise(held):
        assert before[1] <= after[0]
    # ...and each holder saw exactly the increments of those before it
    assert [seen for _, seen in held] == list(range(THREADS))


def test_optimistic_merges_every_key(server: str) -> None:
    sid = seed(server)
    names = [f"k{i}" for i in range(THREADS)]
    results = burst(server, sid, [f"/key?name={name}" for name in names])
    statuses = {name: status for name, (status, _) in zip(names, results, strict=True)}
    # each request merges its own key into whatever the others wrote: all land, none 409s
    assert statuses == dict.fromkeys(names, 200)
    data = state(server, sid)
    assert all(data.get(name) is True for name in names)
    assert data["n"] == 0  # the seeded value survives every merge
