"""A plain WSGI app on coatcheck sessions: a counter, login/logout, per-route options.

Run it with ``python examples/wsgi_app.py`` and open http://localhost:8000 (browsers accept
the Secure cookie on localhost). Sessions go to ``examples/wsgi-sessions.db``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from coatcheck import Config, SessionManager
from coatcheck.web.common import WebOptions
from coatcheck.web.wsgi import SessionMiddleware, get_session, read_only, session_options

TEXT = [("Content-Type", "text/plain; charset=utf-8")]


def index(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    session = environ["coatcheck.session"]  # loaded (and locked) on the first touch
    session["visits"] = session.get("visits", 0) + 1
    start_response("200 OK", TEXT)  # saved and unlocked here, before the body
    return [f"Hello {session.get('user', 'nobody')}, visits: {session['visits']}\n".encode()]


def login(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    user = parse_qs(environ.get("QUERY_STRING", "")).get("user", ["nobody"])[0]
    session = get_session(environ)
    session.regenerate()  # new id on login: a planted id is worthless
    session["user"] = user
    start_response("200 OK", TEXT)
    return [f"logged in as {user}\n".encode()]


def logout(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    get_session(environ).destroy()  # server-side data gone, cookie expired
    start_response("200 OK", TEXT)
    return [b"logged out\n"]


@read_only  # no lock, no write: PHP's read_and_close
def whoami(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    user = get_session(environ).get("user", "nobody")
    start_response("200 OK", TEXT)
    return [f"{user}\n".encode()]


def report(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    session = get_session(environ)
    session["reports"] = session.get("reports", 0) + 1
    session.write_close()  # release the lock before the slow part
    text = f"report {session['reports']} for {session.get('user', 'nobody')}\n"  # slow work
    start_response("200 OK", TEXT)
    return [text.encode()]


@session_options(lock_mode="optimistic")  # concurrent changes to different keys merge
def prefs(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    session = get_session(environ)
    for key, values in query.items():
        session[f"pref:{key}"] = values[0]
    start_response("200 OK", TEXT)
    return [b"saved\n"]


@session_options(skip=True)  # this route never uses the session
def health(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", TEXT)
    return [b"ok\n"]


ROUTES: dict[str, WSGIApplication] = {
    "/": index,
    "/login": login,
    "/logout": logout,
    "/whoami": whoami,
    "/report": report,
    "/prefs": prefs,
    "/health": health,
}


def router(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    route = ROUTES.get(environ.get("PATH_INFO", "/"))
    if route is None:
        start_response("404 Not Found", TEXT)
        return [b"not found\n"]
    return route(environ, start_response)


def create_app(store: SessionManager | str | None = None, **options: Any) -> SessionMiddleware:
    """The example wrapped in the middleware; ``options`` go to SessionMiddleware."""
    if store is None:
        store = f"sqlite:///{Path(__file__).resolve().parent / 'wsgi-sessions.db'}"
    if isinstance(store, str):
        config = Config(idle_timeout=1800)
        return SessionMiddleware(router, store, config, **options)
    return SessionMiddleware(router, store, **options)


if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    app = create_app(options=WebOptions(trusted_proxies=("127.0.0.1/32",)))
    with make_server("127.0.0.1", 8000, app) as server:
        print("serving on http://127.0.0.1:8000")
        server.serve_forever()
