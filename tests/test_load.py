"""The load test with its shadow model, short: bench/load.py at test size.

4 clients x 20 requests (one of them firing bursts of 4 concurrent requests on its session)
against uvicorn and waitress on loopback, on SQLite and the shared Redis; then one fault: a
redis-server of the test's own, with AOF fsynced on every write, SIGKILLed and restarted
under load. Asserted: no cross-session leak, no acknowledged write lost, no increment lost
or duplicated, only typed answers (200/409/503), and the fault recovered from. No timings.
The long version and its figures: ``python -m bench.load``, docs/reliability-load.md.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator

import pytest

from bench.load import Client, Result, Tally, Target, problems, run, store_target
from tests.services import REDIS_URL, in_ci, require

SIZE = {"clients": 4, "requests": 20, "burst": 4, "burst_clients": 1}


def assert_sound(result: Result) -> None:
    t = result.tally
    assert t.acknowledged > 0
    assert t.leaks == 0
    assert t.lost_acknowledged == 0 and t.resets == 0
    assert t.lost_increments == 0 and t.duplicated == 0
    assert {o.status for o in t.outcomes} <= {200, 409, 503}, result.kinds
    assert problems(result) == []


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite"
        return
    require("127.0.0.1", 6379, "Redis")
    url = f"{REDIS_URL}?prefix=cc_load_{uuid.uuid4().hex[:12]}:"
    try:
        yield url
    finally:
        from tests.support.redis import drop_namespace

        drop_namespace(url)


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_load_keeps_every_session_whole(store: str, server: str) -> None:
    with store_target(store, server) as target:
        result = run(target, faults=[], **SIZE)
    assert_sound(result)
    assert len(result.tally.outcomes) >= 4 * 20


@pytest.mark.slow
def test_redis_killed_and_restarted_with_aof_loses_nothing_acknowledged() -> None:
    if shutil.which("redis-server") is None:
        if in_ci():
            pytest.fail("redis-server is not installed, and CI is set")
        pytest.skip("redis-server is not installed")
    with store_target("redis", "asgi") as target:  # a redis-server of our own, AOF always
        result = run(target, faults=["redis-kill"], **SIZE)
    assert_sound(result)
    [fault] = result.faults
    assert fault.recovered is not None
    errors, _, _ = result.errors_during(fault)
    assert set(errors) <= {"503 store", "503 busy", "409"}, errors


# --- the model itself: it must see what it is there to see -----------------------------------


def client(burst: int = 0) -> Client:
    c = Client("http://127.0.0.1:9", Tally(), "me", burst)
    c.close()
    return c


def test_model_counts_an_answer_for_another_session_as_a_leak() -> None:
    c = client()
    c.settle([(200, {"who": "someone-else", "n": 1})])
    assert c.tally.leaks == 1


def test_model_counts_two_answers_with_one_n_as_a_lost_increment() -> None:
    c = client(burst=3)
    c.settle([(200, {"who": "me", "n": 1}), (200, {"who": "me", "n": 1}), (409, b"")])
    assert c.tally.lost_increments == 1
    assert c.tally.acknowledged == 2


def test_model_allows_a_write_whose_answer_was_lost_but_not_a_phantom() -> None:
    c = client()
    c.settle([(0, None)])  # a transport error: the increment may have been written
    c.settle([(200, {"who": "me", "n": 2})])
    assert c.tally.duplicated == 0
    c.settle([(409, b"")])  # a 409 promises nothing was written
    c.settle([(200, {"who": "me", "n": 4})])
    assert c.tally.duplicated == 1


def test_model_counts_a_forgotten_session_as_acknowledged_writes_lost() -> None:
    c = client()
    for n in (1, 2, 3):
        c.settle([(200, {"who": "me", "n": n})])
    assert c.settle([(200, {"who": None, "n": None})]) is False
    assert c.tally.resets == 1 and c.tally.lost_acknowledged == 3


def test_a_store_url_is_a_target_without_a_server_of_our_own() -> None:
    with store_target("sqlite:///unused.db", "asgi") as target:
        assert target == Target("sqlite", "asgi", "sqlite:///unused.db")
