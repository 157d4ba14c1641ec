"""The FastAPI dependencies and examples/fastapi_app.py, through FastAPI's test client."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

fastapi = pytest.importorskip("fastapi")

from fastapi import Depends, FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from coatcheck import AsyncSession, ids  # noqa: E402
from coatcheck.web.asgi import SessionMiddleware  # noqa: E402
from coatcheck.web.common import WebOptions  # noqa: E402
from coatcheck.web.fastapi import NoSession, SessionDep, coatcheck_session  # noqa: E402
from tests.support.threaded import ThreadedAsyncStore  # noqa: E402
from tests.web.asgi_support import (  # noqa: E402
    UA,
    calls,
    cookie_of,
    counting_store,
    hold_lock,
    is_locked,
    manager,
    set_cookies,
    stored,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("coatcheck_fastapi_example", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def client_for(app: FastAPI, **kwargs: Any) -> TestClient:
    return TestClient(app, base_url="https://testserver", headers={"User-Agent": UA}, **kwargs)


def headers(response: Any) -> list[tuple[str, str]]:
    return list(response.headers.multi_items())


@pytest.fixture
def store(tmp_path: Path) -> ThreadedAsyncStore:
    return counting_store(tmp_path)


@pytest.fixture
def example(store: ThreadedAsyncStore) -> Iterator[TestClient]:
    with client_for(_example().create_app(manager(store))) as c:
        yield c


def test_example_counter_login_logout(example: TestClient, store: Any) -> None:
    assert example.get("/").text == "Hello nobody; visits: 1"
    anonymous = example.cookies["session"]
    login = example.post("/login", params={"user": "ada"})
    assert login.text == "logged in as ada"
    sid = cookie_of(headers(login))
    assert sid and sid != anonymous and stored(store, anonymous) is None
    assert example.get("/").text == "Hello ada; visits: 2"
    assert example.get("/me").text == "ada"
    out = example.post("/logout")
    assert "Max-Age=0" in set_cookies(headers(out))[0]
    assert stored(store, sid) is None
    with client_for(_example().create_app(manager(store)), cookies={"session": sid}) as replay:
        assert replay.get("/me").text == "nobody"


def test_example_health_costs_nothing(example: TestClient, store: Any) -> None:
    example.get("/")
    calls(store).clear()
    response = example.get("/health")
    assert response.text == "ok" and calls(store) == []
    assert "set-cookie" not in response.headers and "vary" not in response.headers


def test_example_rejects_bad_user_names_without_saving(example: TestClient, store: Any) -> None:
    example.get("/")
    sid = example.cookies["session"]
    before = stored(store, sid)
    assert example.post("/login", params={"user": "<script>"}).status_code == 422
    assert stored(store, sid) == before  # the id was not regenerated, nothing written
    assert example.get("/me").text == "nobody"


def test_read_only_dependency_works_while_another_request_holds_the_lock(
    example: TestClient, store: Any
) -> None:
    example.post("/login", params={"user": "ada"})
    sid = example.cookies["session"]
    before = stored(store, sid)
    hold_lock(store, sid)
    assert example.get("/me").text == "ada"
    assert stored(store, sid) == before and is_locked(store, sid)
    assert example.get("/").status_code == 503  # a locking route waits, then gives up


def dependency_app(store: Any, **middleware: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, store=manager(store), options=WebOptions(**middleware))

    @app.get("/put/{key}")
    async def put(
        key: str, s: AsyncSession = Depends(coatcheck_session(lock_mode="optimistic"))
    ) -> dict[str, Any]:
        s[key] = True
        return dict(s)

    @app.get("/count")
    async def count(s: SessionDep) -> int:
        s["n"] = s.get("n", 0) + 1
        return int(s["n"])

    @app.get("/poll", dependencies=[NoSession])
    async def poll() -> str:
        return "nothing new"

    return app


def test_optimistic_route_takes_no_lock(store: Any) -> None:
    with client_for(dependency_app(store)) as c:
        c.get("/count")
        sid = c.cookies["session"]
        token = hold_lock(store, sid)
        assert c.get("/put/a").json() == {"n": 1, "a": True}
        store.sync.release(ids.storage_key(sid), token)
        assert c.get("/count").text == "2"


def test_no_session_opt_out_releases_an_autoloaded_lock(store: Any) -> None:
    with client_for(dependency_app(store, autoload=True)) as c:
        c.get("/count")
        sid = c.cookies["session"]
        before = stored(store, sid)
        response = c.get("/poll")
        assert response.json() == "nothing new"
        assert "vary" not in response.headers and "set-cookie" not in response.headers
        assert stored(store, sid) == before and not is_locked(store, sid)
