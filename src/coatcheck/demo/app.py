"""A small WSGI app showing a session: a visit counter, variables, regenerate, destroy.

It drives :class:`~coatcheck.SessionManager` by hand, the way the seeds' PHP page drives
``session_start()``; the web integrations do the same work for real apps.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from .. import Client, CoatcheckError, Config, Session, SessionManager, open_store
from ..cookies import session_cookie
from ..web.common import error_response

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>coatcheck demo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}}
code{{background:#eee;padding:0 .2rem}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}}</style></head>
<body><h1>coatcheck demo</h1>
<p>Store: <code>{store}</code>. {status}</p>
<p>Visits in this session: <strong id="visits">{visits}</strong></p>
<table><tr><th>key</th><th>value</th></tr>{rows}</table>
<form method="post" action="/set"><input name="name" placeholder="name" required>
<input name="value" placeholder="value"><button>Set session variable</button></form>
<form method="post" action="/regenerate"><button>Regenerate id (as on login)</button></form>
<form method="post" action="/destroy"><button>Destroy session (as on logout)</button></form>
</body></html>
"""


def make_app(
    store_url: str = "sqlite:///coatcheck-demo.db", config: Config | None = None
) -> WSGIApp:
    manager = SessionManager(open_store(store_url), config or Config())

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        cookie = session_cookie(environ.get("HTTP_COOKIE"), manager.config.cookie_name)
        client = Client(user_agent=environ.get("HTTP_USER_AGENT", ""))
        try:
            session = manager.start(cookie, client=client)
            try:
                return handle(session, environ, start_response)
            except BaseException:
                session.abort()  # a failed request must not keep the lock until its lease ends
                raise
        except CoatcheckError as e:  # busy, unavailable, or changed meanwhile: say so
            code, headers, body = error_response(e)
            start_response(f"{code} {HTTPStatus(code).phrase}", headers)
            return [body]

    def handle(
        session: Session, environ: dict[str, Any], start_response: StartResponse
    ) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        status = _status(session.is_new, session.is_expired, session.is_bad_hash)
        if method == "POST":
            form = _form(environ)
            if path == "/set" and form.get("name"):
                session[form["name"][:100]] = form.get("value", "")[:1000]
            elif path == "/regenerate":
                session.regenerate_id()
            elif path == "/destroy":
                session.destroy()
            else:
                session.abort()
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"not found\n"]
            return _finish(session, start_response, "303 See Other", [("Location", "/")], b"")
        visits = session.get("visits")  # a visitor can set "visits" to anything via /set
        session["visits"] = (visits if type(visits) is int else 0) + 1
        rows = "".join(
            f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
            for k, v in session.items()
        )
        body = PAGE.format(
            store=html.escape(store_url), status=status, visits=session["visits"], rows=rows
        ).encode()
        headers = [("Content-Type", "text/html; charset=utf-8")]
        return _finish(session, start_response, "200 OK", headers, body)

    return app


def _finish(
    session: Any,
    start_response: StartResponse,
    status: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> list[bytes]:
    if not session.closed:
        session.write_close()  # saved before the response starts
    cookie = session.set_cookie_header()
    if cookie:
        headers.append(("Set-Cookie", cookie))
    headers += [("Vary", "Cookie"), ("Cache-Control", "private, no-store")]
    start_response(status, headers)
    return [body]


def _status(new: bool, expired: bool, bad_hash: bool) -> str:
    if bad_hash:
        return "Your browser changed: the old session was reset."
    if expired:
        return "Your previous session had expired; this is a new one."
    return "This is a new session." if new else "Welcome back."


def _form(environ: dict[str, Any]) -> dict[str, str]:
    try:
        size = min(int(environ.get("CONTENT_LENGTH") or 0), 64 * 1024)
    except ValueError:
        size = 0
    raw = environ["wsgi.input"].read(size).decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(raw).items()}
