"""The ASGI middleware under Starlette's own test client, against real stores."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

starlette = pytest.importorskip("starlette")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, Response  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from coatcheck import Config, SessionNotLoaded, ids, open_async_store  # noqa: E402
from coatcheck.web.asgi import (  # noqa: E402
    SessionMiddleware,
    load_session,
    request_session,
)
from coatcheck.web.common import WebOptions  # noqa: E402
from tests.services import REDIS_URL, require  # noqa: E402
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


async def index(request: Request) -> Response:
    s = await load_session(request)
    s["n"] = s.get("n", 0) + 1
    return PlainTextResponse(f"n={s['n']} user={s.get('user', '-')}")


async def login(request: Request) -> Response:
    s = await load_session(request)
    s.regenerate_id()
    s["user"] = request.query_params["user"]
    return PlainTextResponse("in")


async def logout(request: Request) -> Response:
    s = await load_session(request)
    await s.destroy()
    return PlainTextResponse("out")


async def peek(request: Request) -> Response:
    s = await load_session(request, read_only=True)
    return JSONResponse(dict(s))


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


async def direct(request: Request) -> Response:
    # no load: fine without a stored session, SessionNotLoaded with one
    request.session["direct"] = True
    return PlainTextResponse(repr(request.session))


async def boom(request: Request) -> Response:
    s = await load_session(request)
    s["n"] = 999
    raise RuntimeError("the view failed")


async def fail(request: Request) -> Response:
    s = await load_session(request)
    s["n"] = 999
    return PlainTextResponse("broken", status_code=500)


async def whoami(request: Request) -> Response:
    return PlainTextResponse(str(request_session(request).client.ip))


async def conflict(request: Request) -> Response:
    s = await load_session(request, lock_mode="optimistic")
    s["n"] = "mine"
    # another request (another server) changes the same key meanwhile
    other = await request.app.state.manager.start(s.id, client=request_session(request).client)
    other["n"] = "theirs"
    await other.write_close()
    return PlainTextResponse("saved?")


ROUTES = [
    Route("/", index),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/peek", peek),
    Route("/health", health),
    Route("/direct", direct),
    Route("/boom", boom),
    Route("/fail", fail),
    Route("/whoami", whoami),
    Route("/conflict", conflict),
]


def make_app(store: Any, **middleware: Any) -> Starlette:
    config_options = middleware.pop("config", {})
    mgr = manager(store, **config_options)
    app = Starlette(routes=ROUTES)
    app.state.manager = mgr
    options = middleware.pop("options", None) or WebOptions(**middleware)
    app.add_middleware(SessionMiddleware, store=mgr, options=options)
    return app


def client_for(app: Starlette, peer: str = "127.0.0.1", **kwargs: Any) -> TestClient:
    return TestClient(
        app,
        base_url="https://testserver",
        client=(peer, 50000),
        headers={"User-Agent": UA},
        **kwargs,
    )


@pytest.fixture
def store(tmp_path: Path) -> ThreadedAsyncStore:
    return counting_store(tmp_path)


def counting_store_in_tmp() -> ThreadedAsyncStore:
    import tempfile

    return counting_store(Path(tempfile.mkdtemp()))


@pytest.fixture
def browser(store: ThreadedAsyncStore) -> Iterator[TestClient]:
    with client_for(make_app(store)) as c:
        yield c


def headers(response: Any) -> list[tuple[str, str]]:
    return list(response.headers.multi_items())


def test_set_get_cookie_only_when_id_changes(browser: TestClient, store: Any) -> None:
    first = browser.get("/")
    assert first.text == "n=1 user=-"
    sid = cookie_of(headers(first))
    assert sid and ids.is_well_formed(sid)
    calls(store).clear()
    second = browser.get("/")
    assert second.text == "n=2 user=-"
    assert calls(store) == ["read", "write"]  # loaded once (with the lock), saved once
    assert cookie_of(headers(second)) is None  # same id: no Set-Cookie
    assert second.headers["vary"] == "Cookie"
    assert second.headers["cache-control"] == "private, no-store"
    found = stored(store, sid)
    assert found is not None and b"n" in found.payload
    assert not is_locked(store, sid)  # released when the response started


def test_untouched_request_costs_nothing(browser: TestClient, store: Any) -> None:
    browser.get("/")  # a session exists, and its cookie goes with the next request
    calls(store).clear()
    response = browser.get("/health")
    assert response.text == "ok"
    assert calls(store) == []
    assert "set-cookie" not in response.headers
    assert "vary" not in response.headers and "cache-control" not in response.headers


def test_new_visitor_reads_nothing_and_writes_once(browser: TestClient, store: Any) -> None:
    response = browser.get("/")
    assert response.text == "n=1 user=-"
    assert calls(store) == ["write"]  # no cookie: nothing to read, one write to create


def test_login_regenerates_and_replayed_old_id_is_dead(store: Any) -> None:
    app = make_app(store)
    with client_for(app) as c:
        before = cookie_of(headers(c.get("/")))
        after = cookie_of(headers(c.post("/login", params={"user": "ada"})))
        assert before and after and before != after
        assert stored(store, before) is None
        assert c.get("/").text == "n=2 user=ada"
    with client_for(app, cookies={"session": before}) as attacker:
        page = attacker.get("/")
        assert page.text == "n=1 user=-"
        assert cookie_of(headers(page)) not in (None, before, after)


def test_logout_destroys_data_and_expires_cookie(store: Any) -> None:
    app = make_app(store)
    with client_for(app) as c:
        c.post("/login", params={"user": "ada"})
        sid = c.cookies.get("session")
        assert sid and stored(store, sid) is not None
        out = c.post("/logout")
        assert out.text == "out"
        expired = set_cookies(headers(out))
        assert len(expired) == 1 and "Max-Age=0" in expired[0]
        assert stored(store, sid) is None
    with client_for(app, cookies={"session": sid}) as replay:
        assert replay.get("/peek").json() == {}
        assert replay.get("/").text == "n=1 user=-"


def test_read_only_route_leaves_store_untouched_and_takes_no_lock(
    browser: TestClient, store: Any
) -> None:
    browser.post("/login", params={"user": "ada"})
    sid = browser.cookies["session"]
    before = stored(store, sid)
    token = hold_lock(store, sid)  # another request is busy with this session
    calls(store).clear()
    response = browser.get("/peek")
    assert response.status_code == 200 and response.json() == {"user": "ada"}
    assert calls(store) == ["read"]  # one unlocked read, no write, touch or release
    assert stored(store, sid) == before  # bytes, deadline and version unchanged
    assert is_locked(store, sid)  # the other holder's lock is still its own
    store.sync.release(ids.storage_key(sid), token)
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "private, no-store"


@pytest.mark.parametrize("path", ["/boom", "/fail"])
def test_raise_or_5xx_saves_nothing(store: Any, path: str) -> None:
    app = make_app(store)
    with client_for(app, raise_server_exceptions=False) as c:
        c.get("/")
        sid = c.cookies["session"]
        before = stored(store, sid)
        assert c.get(path).status_code == 500
        assert stored(store, sid) == before
        assert not is_locked(store, sid)
        assert c.get("/").text == "n=2 user=-"


def test_5xx_saved_when_configured(store: Any) -> None:
    with client_for(make_app(store, options=WebOptions(save_on_error=True))) as c:
        c.get("/")
        assert c.get("/fail").status_code == 500
        assert c.get("/").text == "n=1000 user=-"


def test_new_visitor_5xx_creates_nothing(store: Any) -> None:
    with client_for(make_app(store), raise_server_exceptions=False) as c:
        response = c.get("/fail")
        assert response.status_code == 500
        assert "set-cookie" not in response.headers
        assert store.sync.count() == 0


def test_unloaded_session_raises_a_named_error(browser: TestClient) -> None:
    # no cookie yet: the session is fresh and usable without a load
    first = browser.get("/direct")
    assert first.text == "{'direct': True}"  # a real dict once loaded
    assert browser.cookies.get("session")
    with pytest.raises(SessionNotLoaded, match=r"await load_session\(request\)"):
        browser.get("/direct")


def test_autoload_makes_request_session_plain(store: Any) -> None:
    with client_for(make_app(store, autoload=["/direct"])) as c:
        c.get("/")
        assert c.get("/direct").status_code == 200
        assert c.get("/peek").json() == {"n": 1, "direct": True}
        calls(store).clear()
        c.get("/health")  # outside the autoload prefixes: still free
        assert calls(store) == []


async def as_dict(request: Request) -> Response:
    # starsessions / Starlette habits: request.session is a dict everywhere a dict goes
    import copy
    import json

    session = request.session
    session["visits"] = session.get("visits", 0) + 1
    checks = {
        "dumps": json.loads(json.dumps(session)) == session,
        "dict": dict(session) == session,
        "eq": session == {**session},
        "copy": copy.copy(session) == session and copy.deepcopy(session) == session,
        "isinstance": isinstance(session, dict),
    }
    return JSONResponse({"session": session, "checks": checks})


def test_request_session_works_wherever_a_dict_works(store: Any) -> None:
    pattern = re.compile(r"^/api/v\d+/")  # starsessions accepts regular expressions
    app = make_app(store, autoload=[pattern])
    app.router.routes.append(Route("/api/v1/dict", as_dict))
    with client_for(app) as c:
        c.get("/api/v1/dict")
        second = c.get("/api/v1/dict").json()  # a stored session, autoloaded by the pattern
    assert second["session"] == {"visits": 2}
    assert all(second["checks"].values()), second["checks"]


def test_malformed_cookie_gets_a_fresh_session_without_a_store_call(store: Any) -> None:
    with client_for(make_app(store), cookies={"session": "../../etc/passwd\x01"}) as c:
        response = c.get("/peek")
        assert response.json() == {}
        assert calls(store) == []


def test_lock_held_elsewhere_answers_503_with_retry_after(browser: TestClient, store: Any) -> None:
    browser.get("/")
    sid = browser.cookies["session"]
    hold_lock(store, sid)
    response = browser.get("/")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "traceback" not in response.text.lower()


def test_lock_held_elsewhere_with_autoload_answers_503(store: Any) -> None:
    with client_for(make_app(store, autoload=True)) as c:
        c.get("/")
        hold_lock(store, c.cookies["session"])
        response = c.get("/direct")
        assert response.status_code == 503 and "retry-after" in response.headers


def test_unreachable_store_answers_503_at_load_and_at_save() -> None:
    store = open_async_store("redis://127.0.0.1:1/0?socket_timeout=0.2")
    app = make_app(store)
    with client_for(app, cookies={"session": ids.new_id()}) as c:
        response = c.get("/")  # the cookie names a session: the load fails
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.text == "session store unavailable\n"
    with client_for(app) as c:
        response = c.get("/")  # a new visitor: nothing to load, the save fails
        assert response.status_code == 503 and "set-cookie" not in response.headers
        assert c.get("/health").text == "ok"  # requests without the session still work


def test_conflict_answers_409(browser: TestClient, store: Any) -> None:
    browser.get("/")
    response = browser.get("/conflict")
    assert response.status_code == 409
    assert browser.get("/peek").json()["n"] == "theirs"


def test_error_mapping_is_configurable(store: Any) -> None:
    def teapot(exc: Exception) -> tuple[int, list[tuple[str, str]], bytes]:
        return 418, [("Retry-After", "9")], b"busy"

    with client_for(make_app(store, on_error=teapot)) as c:
        c.get("/")
        hold_lock(store, c.cookies["session"])
        response = c.get("/")
        assert (response.status_code, response.text) == (418, "busy")


def test_trusted_proxy_address_is_used_and_spoofing_ignored(store: Any) -> None:
    options = WebOptions(trusted_proxies=("10.0.0.0/8",))
    app = make_app(store, options=options)
    with client_for(app, peer="10.1.2.3") as via_proxy:
        xff = via_proxy.get("/whoami", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7"})
        assert xff.text == "203.0.113.7"
    with client_for(app, peer="198.51.100.9") as direct_client:
        spoofed = direct_client.get("/whoami", headers={"X-Forwarded-For": "203.0.113.7"})
        assert spoofed.text == "198.51.100.9"
    forwarded_app = make_app(store, options=WebOptions(("10.0.0.0/8",), proxy_header="Forwarded"))
    with client_for(forwarded_app, peer="10.1.2.3") as via_proxy:
        both = {"Forwarded": 'for="[2001:db8::7]:443"', "X-Forwarded-For": "6.6.6.6"}
        assert via_proxy.get("/whoami", headers=both).text == "2001:db8::7"


def test_ip_fingerprint_resets_session_from_another_network(store: Any) -> None:
    app = make_app(
        store,
        options=WebOptions(trusted_proxies=("10.0.0.0/8",)),
        config={"fingerprint": ("user_agent", "ip")},
    )
    with client_for(app, peer="10.0.0.1") as c:
        c.get("/", headers={"X-Forwarded-For": "203.0.113.7"})
        assert c.get("/", headers={"X-Forwarded-For": "203.0.113.8"}).text == "n=2 user=-"
        moved = c.get("/", headers={"X-Forwarded-For": "198.51.100.1"})
        assert moved.text == "n=1 user=-"  # another /24: the stolen cookie is worth nothing


def test_vary_is_merged_with_the_apps_own(store: Any) -> None:
    async def varied(request: Request) -> Response:
        s = await load_session(request)
        s["x"] = 1
        return PlainTextResponse("v", headers={"Vary": "Accept", "Cache-Control": "no-cache"})

    app = make_app(store)
    app.router.routes.append(Route("/varied", varied))
    with client_for(app) as c:
        response = c.get("/varied")
        assert response.headers["vary"] == "Accept, Cookie"
        assert response.headers["cache-control"] == "no-cache"  # the app's own choice


def test_middleware_takes_a_store_url(tmp_path: Path) -> None:
    app = Starlette(routes=ROUTES)
    url = f"sqlite:///{tmp_path}/s.db"
    app.add_middleware(SessionMiddleware, store=url, config=Config(gc_probability=0))
    with client_for(app) as c:
        assert c.get("/").text == "n=1 user=-"
        assert c.get("/").text == "n=2 user=-"


def test_redis_store_end_to_end() -> None:
    host, port = "127.0.0.1", 6379
    require(host, port, "Redis")
    prefix = f"cc_{uuid.uuid4().hex[:12]}:"
    url = f"{REDIS_URL}?prefix={prefix}"
    app = Starlette(routes=ROUTES)
    # from a URL the middleware owns the store: closed at each client's lifespan shutdown,
    # as each TestClient runs its own event loop
    app.add_middleware(SessionMiddleware, store=url, config=Config())
    try:
        with client_for(app) as c:
            assert c.get("/").text == "n=1 user=-"
            before = c.cookies["session"]
            c.post("/login", params={"user": "ada"})
            assert c.get("/").text == "n=2 user=ada"
            sid = c.cookies["session"]
            assert sid != before
            c.post("/logout")
        with client_for(app, cookies={"session": sid}) as replay:
            assert replay.get("/peek").json() == {}
    finally:
        from tests.support.redis import drop_namespace

        drop_namespace(url)


def test_starsessions_session_moves_over_under_a_new_id() -> None:
    """An old starsessions session in Redis becomes a coatcheck session on its next request."""
    require("127.0.0.1", 6379, "Redis")
    import json
    import re
    import secrets

    import redis
    import redis.asyncio

    old_prefix = f"cc_{uuid.uuid4().hex[:12]}.starsessions."
    old_id = secrets.token_hex(16)  # starsessions' id format
    old_record = {"user": "ada", "__metadata__": {"lifetime": 0, "created": 1, "last_access": 1}}
    sync_redis = redis.Redis.from_url(REDIS_URL)
    sync_redis.set(old_prefix + old_id, json.dumps(old_record), ex=60)

    async def from_starsessions(cookie: str) -> dict[str, Any] | None:
        if not re.fullmatch(r"[0-9a-f]{32}", cookie):
            return None  # not one of theirs: never sent to a store
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            raw = await client.getdel(old_prefix + cookie)
        finally:
            await client.aclose()
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(raw)
        data.pop("__metadata__", None)
        return data

    store = counting_store_in_tmp()
    app = make_app(store, migrate=from_starsessions)
    try:
        with client_for(app, cookies={"session": old_id}) as c:
            assert c.get("/peek").json() == {}  # read-only: the old session is left alone
            assert sync_redis.exists(old_prefix + old_id) == 1
            first = c.get("/")
            assert first.text == "n=1 user=ada"
            new_id = cookie_of(headers(first))
            assert new_id and new_id != old_id and ids.is_well_formed(new_id)
            c.cookies.clear()  # the jar would send the old cookie too (it has no domain)
            c.cookies.set("session", new_id)
            assert c.get("/").text == "n=2 user=ada"
        assert sync_redis.exists(old_prefix + old_id) == 0
        with client_for(app, cookies={"session": old_id}) as replay:
            assert replay.get("/peek").json() == {}  # the old id is spent
    finally:
        sync_redis.delete(old_prefix + old_id)
        sync_redis.close()


def test_websocket_sessions_are_read_only(browser: TestClient, store: Any) -> None:
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    from coatcheck import SessionClosed

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        s = await load_session(websocket)
        try:
            s["n"] = 0
            refused = False
        except SessionClosed:
            refused = True
        await websocket.send_json({"n": s.get("n"), "refused": refused})
        await websocket.close()

    browser.app.router.routes.append(WebSocketRoute("/ws", ws))  # type: ignore[attr-defined]
    browser.get("/")
    sid = browser.cookies["session"]
    before = stored(store, sid)
    hold_lock(store, sid)  # no lock is needed to read it
    with browser.websocket_connect("/ws", headers={"Cookie": f"session={sid}"}) as socket:
        assert socket.receive_json() == {"n": 1, "refused": True}
    assert stored(store, sid) == before
