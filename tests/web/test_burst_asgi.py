"""The AJAX burst, end to end: 8 concurrent requests with one cookie against uvicorn.

Counts and ordering only; the wall times of the three cases are in bench/bench_burst_asgi.py.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.services import REDIS_URL, require
from tests.web.burst_app import BURST, burst, serve


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('burst')}/sessions.db"
    else:
        require("127.0.0.1", 6379, "Redis")
        url = f"{REDIS_URL}?prefix=cc_{uuid.uuid4().hex[:12]}:"
    try:
        with serve(url) as base:
            yield base
    finally:
        if request.param == "redis":
            from tests.support.redis import drop_namespace

            drop_namespace(url)


async def test_exclusive_with_early_release_keeps_every_increment(server: str) -> None:
    _, statuses, data = await burst(server, "early")
    assert statuses == [200] * BURST
    assert data["n"] == BURST


async def test_exclusive_held_through_the_work_is_serialized(server: str) -> None:
    _, statuses, data = await burst(server, "held")
    assert statuses == [200] * BURST
    assert data["n"] == BURST
    spans: list[Any] = sorted(data["spans"])
    assert sorted(i for _, _, i in spans) == list(range(BURST))  # every request recorded
    for (_, left, _), (entered, _, _) in itertools.pairwise(spans):
        assert entered >= left  # the next holder entered only after the previous one left


async def test_optimistic_writes_to_own_keys_all_survive(server: str) -> None:
    _, statuses, data = await burst(server, "optimistic")
    # each request merges its own key into whatever the others wrote: all land, none 409s
    assert statuses == [200] * BURST
    assert {k for k in data if k.startswith("k")} == {f"k{i}" for i in range(BURST)}
    assert data["n"] == 0  # nobody touched the shared counter
