"""The same ASGI middleware under Quart and Litestar, through each one's own test client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coatcheck import ids
from coatcheck.web.asgi import SessionMiddleware, load_session
from tests.support.threaded import ThreadedAsyncStore
from tests.web.asgi_support import (
    UA,
    calls,
    cookie_of,
    counting_store,
    hold_lock,
    manager,
    set_cookies,
    stored,
)


@pytest.fixture
def store(tmp_path: Path) -> ThreadedAsyncStore:
    return counting_store(tmp_path)


# --- one app body, written against the framework-free API -------------------------------


async def count(request: Any) -> str:
    s = await load_session(request)
    s["n"] = s.get("n", 0) + 1
    return f"n={s['n']} user={s.get('user', '-')}"


async def login(request: Any) -> str:
    s = await load_session(request)
    s.regenerate_id()
    s["user"] = "ada"
    return "in"


async def logout(request: Any) -> str:
    s = await load_session(request)
    await s.destroy()
    return "out"


class Browser:
    """Cookie handling done by hand, the same way for every framework's client."""

    def __init__(self, get: Any, post: Any) -> None:
        self._get, self._post = get, post
        self.cookie: str | None = None

    async def request(self, method: str, path: str) -> tuple[int, str, list[tuple[str, str]]]:
        headers = {"User-Agent": UA}
        if self.cookie:
            headers["Cookie"] = f"session={self.cookie}"
        send = self._get if method == "GET" else self._post
        status, body, response_headers = await send(path, headers)
        for value in set_cookies(response_headers):
            self.cookie = None if "Max-Age=0" in value else cookie_of([("set-cookie", value)])
        return status, body, response_headers


async def exercise(browser: Browser, store: ThreadedAsyncStore) -> None:
    """Set/get, login with a new id, logout, a lock held elsewhere, an untouched route."""
    assert (await browser.request("GET", "/"))[1] == "n=1 user=-"
    anonymous = browser.cookie
    assert anonymous
    status, body, response_headers = await browser.request("GET", "/")
    assert body == "n=2 user=-" and cookie_of(response_headers) is None
    assert dict((k.lower(), v) for k, v in response_headers)["vary"] == "Cookie"
    await browser.request("POST", "/login")
    sid = browser.cookie
    assert sid and sid != anonymous and stored(store, anonymous) is None
    assert (await browser.request("GET", "/"))[1] == "n=3 user=ada"
    calls(store).clear()
    status, body, response_headers = await browser.request("GET", "/health")
    assert body == "ok" and calls(store) == [] and not set_cookies(response_headers)
    token = hold_lock(store, sid)
    status, body, response_headers = await browser.request("GET", "/")
    assert status == 503 and "retry-after" in {k.lower() for k, _ in response_headers}
    store.sync.release(ids.storage_key(sid), token)
    await browser.request("POST", "/logout")
    assert browser.cookie is None and stored(store, sid) is None


# --- Quart ---------------------------------------------------------------------------------


async def test_quart(store: ThreadedAsyncStore) -> None:
    quart = pytest.importorskip("quart")
    app = quart.Quart(__name__)

    @app.get("/")
    async def index() -> str:
        return await count(quart.request)

    @app.post("/login")
    async def quart_login() -> str:
        return await login(quart.request)

    @app.post("/logout")
    async def quart_logout() -> str:
        return await logout(quart.request)

    @app.get("/health")
    async def health() -> str:
        return "ok"

    app.asgi_app = SessionMiddleware(app.asgi_app, store=manager(store))  # type: ignore[method-assign]
    client = app.test_client(use_cookies=False)

    async def get(path: str, headers: dict[str, str]) -> Any:
        r = await client.get(path, headers=headers)
        return r.status_code, await r.get_data(as_text=True), list(r.headers.items())

    async def post(path: str, headers: dict[str, str]) -> Any:
        r = await client.post(path, headers=headers)
        return r.status_code, await r.get_data(as_text=True), list(r.headers.items())

    await exercise(Browser(get, post), store)


# --- Litestar ------------------------------------------------------------------------------


async def test_litestar(store: ThreadedAsyncStore) -> None:
    litestar = pytest.importorskip("litestar")
    from litestar import Request, get, post
    from litestar.middleware import DefineMiddleware
    from litestar.testing import AsyncTestClient

    @get("/", media_type="text/plain")
    async def index(request: Request[Any, Any, Any]) -> str:
        assert request.session is request.scope["session"]  # Litestar's own accessor sees it
        return await count(request)

    @post("/login", media_type="text/plain", status_code=200)
    async def ls_login(request: Request[Any, Any, Any]) -> str:
        return await login(request)

    @post("/logout", media_type="text/plain", status_code=200)
    async def ls_logout(request: Request[Any, Any, Any]) -> str:
        return await logout(request)

    @get("/health", media_type="text/plain")
    async def health() -> str:
        return "ok"

    app = litestar.Litestar(
        route_handlers=[index, ls_login, ls_logout, health],
        middleware=[DefineMiddleware(SessionMiddleware, store=manager(store))],
    )
    async with AsyncTestClient(app, base_url="https://testserver.local") as client:

        async def send(method: str, path: str, headers: dict[str, str]) -> Any:
            client.cookies.clear()
            r = await client.request(method, path, headers=headers)
            return r.status_code, r.text, list(r.headers.multi_items())

        async def ls_get(path: str, headers: dict[str, str]) -> Any:
            return await send("GET", path, headers)

        async def ls_post(path: str, headers: dict[str, str]) -> Any:
            return await send("POST", path, headers)

        await exercise(Browser(ls_get, ls_post), store)
