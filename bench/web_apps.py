"""The web apps the framework benchmarks drive: one view, and each session library around it.

Every app answers the same routes, so the only difference between two contenders is the
session library (and its store):

- ``/start``: a new session holding about 200 bytes (``n = 0``, a user name, padding);
  answers ``0``.
- ``/incr``: ``n += 1``; answers the new ``n``. ``?work=0.05`` sleeps that long before
  answering (the AJAX burst), with the session still held by the request.
- ``/incr_early`` (coatcheck only): the same, but ``write_close()`` before the work.
- ``/incr_optimistic`` (coatcheck only): the same in optimistic mode (no lock; a concurrent
  change of ``n`` is a conflict, answered 409).
- ``/get``: ``n`` (read only where the library has that).

"none" is the same app with no session at all (``/incr`` counts in the process instead), the
baseline a session's cost is measured from. Peers run with their documented default
configuration on the same Redis / PostgreSQL; each run names its keys and tables after one
namespace (:func:`namespace`) and :func:`drop` removes them all.

The drivers call the apps in process, with no sockets: :func:`wsgi_call` (Flask, Django)
and :func:`asgi_call` (Starlette). ``python -m bench.web_apps serve FRAMEWORK LIBRARY NS PORT``
serves one app on loopback for the burst (waitress for WSGI, uvicorn for ASGI).
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from tests.services import POSTGRES_URL, REDIS_URL

from .common import data

START = data(200)  # {"n": 0, "user": "ann", "pad": "xxx..."}
FRAMEWORKS: dict[str, tuple[str, ...]] = {
    "flask": (
        "none",
        "coatcheck-redis",
        "flask-session-redis",
        "coatcheck-postgresql",
        "flask-session-sqlalchemy",
    ),
    "starlette": ("none", "coatcheck-redis", "starsessions-redis", "coatcheck-postgresql"),
    "django": (
        "none",
        "coatcheck-redis",
        "django-cache-redis",
        "coatcheck-postgresql",
        "django-db-postgresql",
    ),
}
SQLALCHEMY_URL = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://", 1)


def namespace() -> str:
    """A fresh name for one run's keys and tables."""
    return f"bench_{uuid.uuid4().hex[:10]}"


def coatcheck_url(library: str, ns: str) -> str:
    if library.endswith("redis"):
        return f"{REDIS_URL}?prefix={ns}_cc:"
    return f"{POSTGRES_URL}?table={ns}_cc"


def drop(ns: str) -> None:
    """Remove every key and table any app of namespace ``ns`` may have made."""
    import psycopg
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch = []
        for name in client.scan_iter(match=f"{ns}*", count=1000):
            batch.append(name)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
    finally:
        client.close()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for suffix in ("cc", "fs"):
            conn.execute(f'DROP TABLE IF EXISTS "{ns}_{suffix}"')
        conn.execute(f'DROP SCHEMA IF EXISTS "{ns}_dj" CASCADE')


def _work(seconds: str | None) -> float:
    return float(seconds) if seconds else 0.0


def _sleep(seconds: float) -> None:
    if seconds:  # no sleep(0): it gives the CPU away, a cost no real view has
        time.sleep(seconds)


async def _asleep(seconds: float) -> None:
    if seconds:
        await asyncio.sleep(seconds)


# --- Flask ---------------------------------------------------------------------------------


def flask_app(library: str, ns: str) -> Any:
    """A Flask app with ``library``'s sessions (see the module docstring)."""
    from flask import Flask, request, session

    app = Flask(f"bench_{library.replace('-', '_')}")
    if library == "none":
        count = [0]

        @app.get("/start")
        def start_none() -> str:
            return "0"

        @app.get("/incr")
        def incr_none() -> str:
            count[0] += 1
            _sleep(_work(request.args.get("work")))
            return str(count[0])

        return app
    if library.startswith("coatcheck"):
        from coatcheck.web.flask import init_app, read_only, session_options, write_close

        init_app(app, store=coatcheck_url(library, ns))

        @app.get("/incr_early")
        def incr_early() -> str:
            n = session["n"] + 1
            session["n"] = n
            write_close()  # the lock is free during the work
            _sleep(_work(request.args.get("work")))
            return str(n)

        @app.get("/incr_optimistic")
        @session_options(lock_mode="optimistic")
        def incr_optimistic() -> str:
            return incr()

        @app.get("/get")
        @read_only
        def get() -> str:
            return str(session.get("n"))

    else:
        _flask_session(app, library, ns)

        @app.get("/get")
        def get_peer() -> str:
            return str(session.get("n"))

    @app.get("/start")
    def start() -> str:
        session.update(START)
        return "0"

    @app.get("/incr")
    def incr() -> str:
        n = session["n"] + 1
        session["n"] = n
        _sleep(_work(request.args.get("work")))
        return str(n)

    return app


def _flask_session(app: Any, library: str, ns: str) -> None:
    """Flask-Session with its documented defaults, on the shared Redis or PostgreSQL."""
    from flask_session import Session

    if library == "flask-session-redis":
        import redis

        app.config.update(
            SESSION_TYPE="redis",
            SESSION_REDIS=redis.Redis.from_url(REDIS_URL),
            SESSION_KEY_PREFIX=f"{ns}_fs:",
        )
    elif library == "flask-session-sqlalchemy":
        from flask_sqlalchemy import SQLAlchemy

        app.config.update(SQLALCHEMY_DATABASE_URI=SQLALCHEMY_URL)
        db = SQLAlchemy(app)
        app.config.update(
            SESSION_TYPE="sqlalchemy", SESSION_SQLALCHEMY=db, SESSION_SQLALCHEMY_TABLE=f"{ns}_fs"
        )
    else:
        raise ValueError(f"no Flask app for {library}")
    Session(app)


# --- Starlette -----------------------------------------------------------------------------


def starlette_app(library: str, ns: str) -> Any:
    """A Starlette app with ``library``'s sessions (see the module docstring)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    def work(request: Request) -> float:
        return _work(request.query_params.get("work"))

    if library == "none":
        count = [0]

        async def start_none(request: Request) -> Response:
            return PlainTextResponse("0")

        async def incr_none(request: Request) -> Response:
            count[0] += 1
            await _asleep(work(request))
            return PlainTextResponse(str(count[0]))

        routes = [Route("/start", start_none), Route("/incr", incr_none)]
        return Starlette(routes=routes)

    if library.startswith("coatcheck"):
        from coatcheck.web.asgi import SessionMiddleware, load_session

        middleware = [Middleware(SessionMiddleware, store=coatcheck_url(library, ns))]

        async def load(request: Request, **kw: Any) -> Any:
            return await load_session(request, **kw)

        async def incr_early(request: Request) -> Response:
            s = await load_session(request)
            n = s["n"] + 1
            s["n"] = n
            await s.write_close()
            await _asleep(work(request))
            return PlainTextResponse(str(n))

        async def incr_optimistic(request: Request) -> Response:
            s = await load_session(request, lock_mode="optimistic")
            return await _incr(s, work(request))

        async def get(request: Request) -> Response:
            return PlainTextResponse(str((await load_session(request, read_only=True)).get("n")))

        extra = [
            Route("/incr_early", incr_early),
            Route("/incr_optimistic", incr_optimistic),
            Route("/get", get),
        ]
    elif library == "starsessions-redis":
        from redis.asyncio import Redis
        from starsessions import SessionMiddleware as StarSessions
        from starsessions import load_session as star_load
        from starsessions.stores.redis import RedisStore

        store = RedisStore(connection=Redis.from_url(REDIS_URL), prefix=f"{ns}_ss:")
        middleware = [Middleware(StarSessions, store=store)]

        async def load(request: Request, **kw: Any) -> Any:
            await star_load(request)
            return request.session

        async def get_peer(request: Request) -> Response:
            return PlainTextResponse(str((await load(request)).get("n")))

        extra = [Route("/get", get_peer)]
    else:
        raise ValueError(f"no Starlette app for {library}")

    async def _incr(s: Any, seconds: float) -> Response:
        n = s["n"] + 1
        s["n"] = n
        await _asleep(seconds)
        return PlainTextResponse(str(n))

    async def start(request: Request) -> Response:
        (await load(request)).update(START)
        return PlainTextResponse("0")

    async def incr(request: Request) -> Response:
        return await _incr(await load(request), work(request))

    routes = [Route("/start", start), Route("/incr", incr), *extra]
    return Starlette(routes=routes, middleware=middleware)


# --- Django --------------------------------------------------------------------------------

_django_ns: list[str] = []


def django_setup(ns: str) -> None:
    """Configure Django once per process: PostgreSQL in a schema of ``ns``, Redis cache."""
    import django
    from django.conf import settings

    if _django_ns:
        if _django_ns[0] != ns:
            raise RuntimeError("Django is set up once per process, for one namespace")
        return
    host = POSTGRES_URL.split("@", 1)[-1]
    hostport, dbname = host.split("/", 1)
    pg_host, _, pg_port = hostport.partition(":")
    pg_user = POSTGRES_URL.split("//", 1)[1].split("@", 1)[0]
    settings.configure(
        DEBUG=False,
        SECRET_KEY="coatcheck-bench-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="bench.django_urls",
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.sessions"],
        MIDDLEWARE=[],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": dbname.split("?", 1)[0],
                "USER": pg_user,
                "HOST": pg_host,
                "PORT": pg_port or "5432",
                # persistent connections: the session's queries, not a connect per request
                "CONN_MAX_AGE": 600,
                "OPTIONS": {"options": f"-c search_path={ns}_dj"},
            }
        },
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS_URL,
                "KEY_PREFIX": f"{ns}_dj",
            }
        },
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()
    from django.contrib.sessions.models import Session
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{ns}_dj"')
    with connection.schema_editor() as editor:
        editor.create_model(Session)
    _django_ns.append(ns)


def django_settings(library: str, ns: str) -> dict[str, Any]:
    """The settings one Django contender runs under (``override_settings``)."""
    django_mw = "django.contrib.sessions.middleware.SessionMiddleware"
    if library == "none":
        return {"MIDDLEWARE": []}
    if library.startswith("coatcheck"):
        return {
            "MIDDLEWARE": ["coatcheck.django.SessionMiddleware"],
            "SESSION_ENGINE": "coatcheck.django",
            "COATCHECK": {"STORE": coatcheck_url(library, ns)},
        }
    if library == "django-cache-redis":
        return {
            "MIDDLEWARE": [django_mw],
            "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
        }
    if library == "django-db-postgresql":
        return {"MIDDLEWARE": [django_mw], "SESSION_ENGINE": "django.contrib.sessions.backends.db"}
    raise ValueError(f"no Django app for {library}")


@dataclass
class DjangoApp:
    """A WSGI handler built under one contender's settings, called under them too."""

    settings: dict[str, Any]
    handler: Any = None

    def __post_init__(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        with self.enabled():
            self.handler = WSGIHandler()

    def enabled(self) -> Any:
        from django.test.utils import override_settings

        return override_settings(**self.settings)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return self.handler(environ, start_response)  # type: ignore[no-any-return]


def django_app(library: str, ns: str) -> DjangoApp:
    django_setup(ns)
    return DjangoApp(django_settings(library, ns))


# --- in-process drivers ----------------------------------------------------------------------


def environ(path: str, cookie: str | None) -> dict[str, Any]:
    path, _, query = path.partition("?")
    env: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "bench.test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "bench.test",
        "HTTP_USER_AGENT": "coatcheck-bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if cookie:
        env["HTTP_COOKIE"] = cookie
    return env


@dataclass
class Reply:
    status: int
    body: bytes
    cookie: str | None  # "name=value" of the session cookie it set, if any


COOKIES = ("session", "sessionid")  # every library's default name (Django: sessionid)


def _cookie(headers: Iterable[tuple[str, str]]) -> str | None:
    for name, value in headers:
        pair = value.strip().split(";", 1)[0]
        if name.lower() == "set-cookie" and pair.split("=", 1)[0] in COOKIES:
            return pair
    return None


def wsgi_call(app: Callable[..., Any], path: str, cookie: str | None = None) -> Reply:
    """One request to a WSGI app, in process."""
    got: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        got.append((int(status.split(" ", 1)[0]), headers))
        return lambda chunk: None

    result = app(environ(path, cookie), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = got[0]
    return Reply(status, body, _cookie(headers))


async def asgi_call(app: Any, path: str, cookie: str | None = None) -> Reply:
    """One request to an ASGI app, in process."""
    raw_path, _, query = path.partition("?")
    headers = [(b"host", b"bench.test"), (b"user-agent", b"coatcheck-bench")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("bench.test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])]
    return Reply(start["status"], body, _cookie(pairs))


async def asgi_shutdown(app: Any) -> None:
    """Run the app's lifespan through start-up and shut-down (closes the stores it opened)."""
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        pass

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)


# --- serving one app on loopback (the burst) -------------------------------------------------


def serve(framework: str, library: str, ns: str, port: int, threads: int) -> None:
    """Serve one app on 127.0.0.1:``port`` until terminated."""
    if framework == "flask":
        from waitress import serve as waitress_serve

        waitress_serve(flask_app(library, ns), host="127.0.0.1", port=port, threads=threads)
    elif framework == "starlette":
        import uvicorn

        app = starlette_app(library, ns)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    else:
        raise ValueError(f"cannot serve {framework}")


def main(argv: list[str]) -> int:
    if len(argv) != 6 or argv[0] != "serve":
        print("usage: python -m bench.web_apps serve FRAMEWORK LIBRARY NS PORT THREADS")
        return 2
    serve(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
