"""The web conformance scenarios (tests/web/conformance.py) against Starlette, FastAPI,
plain WSGI and Flask; Django runs the same list in its own process (django_cases.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

# FastAPI reads the routes' annotations at run time, so these live at module level
from fastapi import Request

from coatcheck import AsyncSessionManager, Config, SessionManager
from coatcheck.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from coatcheck.web.common import WebOptions
from coatcheck.web.fastapi import ReadOnlySessionDep, SessionDep
from tests.web.conformance import SCENARIOS, UA, Reply, Web, lock_free, migrate

CONFIG = Config(gc_probability=0, lock_wait=0.2)
OPTIONS = WebOptions(migrate=migrate)
GRACE = 30.0


class WSGIWeb:
    """Requests through werkzeug's test client; an escaping exception is the server's 500."""

    def __init__(self, app: Any, manager: SessionManager) -> None:
        from werkzeug.test import Client as WerkzeugClient

        self.app = app
        self.client = WerkzeugClient(app, use_cookies=False)
        self.manager = manager

    def request(self, method: str, path: str, cookie: str | None = None) -> Reply:
        headers = {"User-Agent": UA}
        if cookie:
            headers["Cookie"] = f"session={cookie}"
        try:
            r = self.client.open(path, method=method, headers=headers, buffered=True)
        except Exception:
            return Reply(500, [], "server error")
        return Reply(
            r.status_code,
            list(r.headers.items()),
            r.get_data(as_text=True),
            r.headers.getlist("Set-Cookie"),
        )


class ASGIWeb:
    """Requests through Starlette's test client, server exceptions answered 500."""

    def __init__(self, app: Any, manager: SessionManager) -> None:
        from starlette.testclient import TestClient

        self.client = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
        self.manager = manager

    def request(self, method: str, path: str, cookie: str | None = None) -> Reply:
        self.client.cookies.clear()
        headers = {"User-Agent": UA}
        if cookie:
            headers["Cookie"] = f"session={cookie}"
        r = self.client.request(method, path, headers=headers)
        return Reply(
            r.status_code, list(r.headers.multi_items()), r.text, r.headers.get_list("set-cookie")
        )


# --- the apps -------------------------------------------------------------------------------


def starlette_app(db: str, check: SessionManager) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from coatcheck.web.asgi import SessionMiddleware, load_session, request_session

    async def count(request: Request) -> Response:
        s = await load_session(request)
        s["n"] = s.get("n", 0) + 1
        return PlainTextResponse(str(s["n"]))

    async def none(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def peek(request: Request) -> Response:
        s = await load_session(request, read_only=True)
        return PlainTextResponse(str(s.get("n")))

    async def early(request: Request) -> Response:
        s = await load_session(request)
        s["n"] = s.get("n", 0) + 1
        await request_session(request).write_close()
        return PlainTextResponse("free" if lock_free(check, s.id) else "held")

    async def login(request: Request) -> Response:
        await load_session(request)
        request.session["user"] = "ada"
        request_session(request).regenerate(grace=GRACE)
        return PlainTextResponse("in")

    async def logout(request: Request) -> Response:
        await load_session(request)
        await request_session(request).destroy()
        return PlainTextResponse("out")

    async def clear(request: Request) -> Response:
        await load_session(request)
        request.session.clear()
        return PlainTextResponse("cleared")

    async def fail(request: Request) -> Response:
        s = await load_session(request)
        s["n"] = 999
        return PlainTextResponse("failed", status_code=500)

    async def bad(request: Request) -> Response:
        s = await load_session(request)
        s["n"] = {1, 2}  # not JSON: a bug in the app
        return PlainTextResponse("bad")

    async def cached(request: Request) -> Response:
        s = await load_session(request)
        headers = {"Cache-Control": "public, max-age=60"}
        return PlainTextResponse(str(s.get("n")), headers=headers)

    routes = [
        Route("/count", count),
        Route("/none", none),
        Route("/peek", peek),
        Route("/early", early),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/clear", clear, methods=["POST"]),
        Route("/fail", fail),
        Route("/bad", bad),
        Route("/cached", cached),
    ]
    app = Starlette(routes=routes)
    manager = AsyncSessionManager(AsyncSQLiteStore(db), CONFIG)
    app.add_middleware(SessionMiddleware, store=manager, options=OPTIONS)
    return app


def fastapi_app(db: str, check: SessionManager) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import PlainTextResponse

    from coatcheck.web.asgi import SessionMiddleware

    app = FastAPI()

    @app.get("/count", response_class=PlainTextResponse)
    async def count(session: SessionDep) -> str:
        session["n"] = session.get("n", 0) + 1
        return str(session["n"])

    @app.get("/none", response_class=PlainTextResponse)
    async def none() -> str:
        return "ok"

    @app.get("/peek", response_class=PlainTextResponse)
    async def peek(session: ReadOnlySessionDep) -> str:
        return str(session.get("n"))

    @app.get("/early", response_class=PlainTextResponse)
    async def early(session: SessionDep) -> str:
        session["n"] = session.get("n", 0) + 1
        await session.write_close()
        return "free" if lock_free(check, session.id) else "held"

    @app.post("/login", response_class=PlainTextResponse)
    async def login(session: SessionDep) -> str:
        session["user"] = "ada"
        session.regenerate_id(grace=GRACE)
        return "in"

    @app.post("/logout", response_class=PlainTextResponse)
    async def logout(session: SessionDep) -> str:
        await session.destroy()
        return "out"

    @app.post("/clear", response_class=PlainTextResponse)
    async def clear(request: Request, session: SessionDep) -> str:
        request.session.clear()
        return "cleared"

    @app.get("/fail", response_class=PlainTextResponse, status_code=500)
    async def fail(session: SessionDep) -> str:
        session["n"] = 999
        return "failed"

    @app.get("/bad", response_class=PlainTextResponse)
    async def bad(session: SessionDep) -> str:
        session["n"] = {1, 2}
        return "bad"

    @app.get("/cached")
    async def cached(session: SessionDep) -> PlainTextResponse:
        headers = {"Cache-Control": "public, max-age=60"}
        return PlainTextResponse(str(session.get("n")), headers=headers)

    manager = AsyncSessionManager(AsyncSQLiteStore(db), CONFIG)
    app.add_middleware(SessionMiddleware, store=manager, options=OPTIONS)
    return app


def wsgi_app(db: str, check: SessionManager) -> Any:
    from coatcheck.web.wsgi import SessionMiddleware, get_session, read_only

    def text(start_response: Any, body: str, status: str = "200 OK", **extra: str) -> list[bytes]:
        headers = [("Content-Type", "text/plain"), *extra.items()]
        start_response(status, [(k.replace("_", "-"), v) for k, v in headers])
        return [body.encode()]

    @read_only
    def peek(environ: Any, start_response: Any) -> Iterable[bytes]:
        return text(start_response, str(get_session(environ).get("n")))

    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        path, s = environ["PATH_INFO"], get_session(environ)
        if path == "/peek":
            return peek(environ, start_response)
        if path == "/none":
            return text(start_response, "ok")
        if path in ("/count", "/early"):
            s["n"] = s.get("n", 0) + 1
            if path == "/early":
                s.write_close()
                free = lock_free(check, s.session.id)
                return text(start_response, "free" if free else "held")
            return text(start_response, str(s["n"]))
        if path == "/login":
            s["user"] = "ada"
            s.regenerate(grace=GRACE)
            return text(start_response, "in")
        if path == "/logout":
            s.destroy()
            return text(start_response, "out")
        if path == "/clear":
            s.clear()
            return text(start_response, "cleared")
        if path == "/fail":
            s["n"] = 999
            return text(start_response, "failed", "500 Internal Server Error")
        if path == "/bad":
            s["n"] = {1, 2}
            return text(start_response, "bad")
        assert path == "/cached"
        return text(start_response, str(s.get("n")), Cache_Control="public, max-age=60")

    return SessionMiddleware(app, SessionManager(SQLiteStore(db), CONFIG), options=OPTIONS)


def flask_app(db: str, check: SessionManager) -> Any:
    from flask import Flask, session

    from coatcheck.web.flask import init_app, session_options

    app = Flask(__name__)
    app.config["SESSION_PERMANENT"] = False  # Flask's own default; the scenarios expect it

    def plain(body: str, status: int = 200, **headers: str) -> Any:
        extra = {name.replace("_", "-"): value for name, value in headers.items()}
        return body, status, {"Content-Type": "text/plain", **extra}

    @app.get("/count")
    def count() -> Any:
        session["n"] = session.get("n", 0) + 1
        return plain(str(session["n"]))

    @app.get("/none")
    def none() -> Any:
        return plain("ok")

    @app.get("/peek")
    @session_options(read_only=True)
    def peek() -> Any:
        return plain(str(session.get("n")))

    @app.get("/early")
    def early() -> Any:
        session["n"] = session.get("n", 0) + 1
        session.write_close()  # type: ignore[attr-defined]
        return plain("free" if lock_free(check, session.sid) else "held")  # type: ignore[attr-defined]

    @app.post("/login")
    def login() -> Any:
        session["user"] = "ada"
        session.regenerate(grace=GRACE)  # type: ignore[attr-defined]
        return plain("in")

    @app.post("/logout")
    def logout() -> Any:
        session.destroy()  # type: ignore[attr-defined]
        return plain("out")

    @app.post("/clear")
    def clear() -> Any:
        session.clear()
        return plain("cleared")

    @app.get("/fail")
    def fail() -> Any:
        session["n"] = 999
        return plain("failed", 500)

    @app.get("/bad")
    def bad() -> Any:
        session["n"] = {1, 2}
        return plain("bad")

    @app.get("/cached")
    def cached() -> Any:
        return plain(str(session.get("n")), Cache_Control="public, max-age=60")

    init_app(app, SessionManager(SQLiteStore(db), CONFIG), options=OPTIONS)
    return app


APPS: dict[str, tuple[Callable[[str, SessionManager], Any], type[Any]]] = {
    "starlette": (starlette_app, ASGIWeb),
    "fastapi": (fastapi_app, ASGIWeb),
    "wsgi": (wsgi_app, WSGIWeb),
    "flask": (flask_app, WSGIWeb),
}


@pytest.fixture(params=sorted(APPS))
def web(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Web]:
    db = str(tmp_path / "sessions.db")
    check = SessionManager(SQLiteStore(db), CONFIG)
    factory, driver = APPS[request.param]
    yield driver(factory(db, check), check)
    check.store.close()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario(web: Web, scenario: str) -> None:
    SCENARIOS[scenario](web)
