"""The demo web app: one page that shows a session as the server sees it, and acts on it.

It drives :class:`~coatcheck.SessionManager` by hand, the way seed 003's PHP page drives
``session_start()``, so every step is visible here; the web integrations (coatcheck.web) do
the same work for real apps. Standard library WSGI only; :mod:`coatcheck.demo.page` draws
the HTML, :mod:`coatcheck.demo.server` serves it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qs, quote

import orjson

from .. import (
    Client,
    CoatcheckError,
    Config,
    Session,
    SessionConflict,
    SessionManager,
    open_store,
)
from ..contract import Stored
from ..cookies import CookieAction, session_cookie, set_cookie
from ..record import unpack
from ..web.common import error_response
from . import page

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Headers = list[tuple[str, str]]

DEFAULT_IDLE = 120.0  # short, so that expiry can be watched; `coatcheck demo --idle`
RETENTION = 3600.0  # database_ttl: an expired session is kept this long for unexpire()
BURST_DELAY = 0.05  # the "slow part" of each burst request, in seconds
BURST_MODES = ("exclusive", "release", "optimistic")

CSRF_KEY = "_csrf"  # the demo's own keys start with "_"; visitors may not set those
TAG_COOKIE = "demo_tag"  # joins the User-Agent in the fingerprint: switching it = bad hash
SEEN_COOKIE = "demo_seen"  # a hash of the id the previous page showed (never the id)
CSRF_COOKIE = "demo_csrf"  # the expired page's token: that page has no session to hold one
CSRF_HEADER = "HTTP_X_CSRF_TOKEN"

log = logging.getLogger("coatcheck.demo")


def demo_config(*, idle: float = DEFAULT_IDLE, secure: bool = True) -> Config:
    """The demo's settings: a short idle timeout, expired sessions kept for an hour so they
    can be unexpired, and fingerprint mismatches flagged (not reset) so the flag shows."""
    return Config(
        idle_timeout=idle,
        database_ttl=RETENTION,
        fingerprint_policy="flag",
        cookie_secure=secure,
    )


def public_store_url(url: str) -> str:
    """The store URL without credentials or options, fit for a page or a console."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.partition("?")[0]
    netloc, slash, path = rest.partition("/")
    path = path.partition("?")[0].partition("#")[0]
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"


def redirect(done: str, **params: str | int) -> Response:
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in {"done": done, **params}.items())
    return Response(303, headers=[("Location", f"/?{query}")])


def json_response(status: int, value: dict[str, Any]) -> Response:
    return Response(status, orjson.dumps(value), content_type="application/json")


class Request:
    """What the demo reads from a WSGI environ."""

    def __init__(self, environ: dict[str, Any], cookie_name: str) -> None:
        self.environ = environ
        self.path: str = environ.get("PATH_INFO") or "/"
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        self.query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        self.session_cookie = session_cookie(environ.get("HTTP_COOKIE"), cookie_name)
        self.tag = self.cookie(TAG_COOKIE) or "a"
        user_agent = f"{environ.get('HTTP_USER_AGENT', '')} demo-tag/{self.tag}"
        self.client = Client(user_agent=user_agent, ip=environ.get("REMOTE_ADDR") or None)

    def cookie(self, name: str) -> str | None:
        return session_cookie(self.environ.get("HTTP_COOKIE"), name)

    @cached_property
    def form(self) -> dict[str, str]:
        try:
            size = min(int(self.environ.get("CONTENT_LENGTH") or 0), 64 * 1024)
        except ValueError:
            size = 0
        raw = self.environ["wsgi.input"].read(size).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(raw).items()}


Action = Callable[[Session, Request], Response]


class DemoApp:
    """The WSGI app. ``server_label`` names this server on every page (host:port)."""

    def __init__(
        self,
        store_url: str,
        config: Config | None = None,
        *,
        server_label: str | None = None,
        burst_delay: float = BURST_DELAY,
        clock: Callable[[], float] | None = None,
    ) -> None:
        store = open_store(store_url)
        self.manager = SessionManager(store, config or demo_config(), clock=clock)
        self.config = self.manager.config
        self._cookie_configs: dict[str, Config] = {}
        self.store_url = public_store_url(store_url)
        self.server_label = server_label
        self.burst_delay = burst_delay
        self.forms: dict[str, Action] = {
            "/var": self.variable,
            "/regenerate": self.regenerate,
            "/destroy": self.destroy,
            "/badhash": self.switch_tag,
            "/login": self.login,
            "/logout": self.logout,
            "/logout-everywhere": self.logout_everywhere,
            "/unexpire": self.unexpire,
            "/fresh": self.fresh,
        }

    # --- WSGI -----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        request = Request(environ, self.config.cookie_name)
        try:
            response = self.route(request)
        except CoatcheckError as e:  # the store failed, the lock is busy, or a write lost
            response = self.error(request, e)
        headers = [("Content-Type", response.content_type), *response.headers]
        headers += [("Cache-Control", "private, no-store"), ("Vary", "Cookie")]
        if response.content_type.startswith("text/html"):
            headers += page.SECURITY_HEADERS
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        return [response.body]

    def route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/" and method in ("GET", "HEAD"):
            return self.with_session(request, self.main_page)
        if path == "/burst/state" and method == "GET":
            return self.burst_state(request)
        if path == "/burst/hit" and method == "POST":
            return self.burst_hit(request)
        action = self.forms.get(path)
        if action is not None and method == "POST":
            return self.with_session(request, self.checked(action))
        known = action is not None or path in ("/", "/burst/state", "/burst/hit")
        status = 405 if known else 404
        text = "That method is not used here." if known else "There is no such page."
        return Response(status, page.message(HTTPStatus(status).phrase, text, self.where(request)))

    def with_session(self, request: Request, action: Action, **start: Any) -> Response:
        """Start the session, run ``action``, save; a failed request releases the lock."""
        session = self.manager.start(request.session_cookie, client=request.client, **start)
        try:
            response = action(session, request)
            if not session.closed:
                session.write_close()
        except BaseException:
            if not session.closed:
                with contextlib.suppress(CoatcheckError):  # the first error is the one to show
                    session.abort()
            raise
        cookie = session.set_cookie_header()
        if cookie:
            response.headers.append(("Set-Cookie", cookie))
        return response

    def checked(self, action: Action) -> Action:
        """``action`` behind the CSRF check: the form's token against the session's."""

        def run(session: Session, request: Request) -> Response:
            sent = request.form.get("csrf", "")
            if action in (self.unexpire, self.fresh):  # the expired page: no session token
                expected = request.cookie(CSRF_COOKIE)
            else:
                expected = session.get(CSRF_KEY)
            if not same_token(sent, expected):
                session.abort()
                return Response(403, page.forbidden(session.is_expired, self.where(request)))
            return action(session, request)

        return run

    def error(self, request: Request, exc: CoatcheckError) -> Response:
        code, headers, _ = error_response(exc)
        log.warning("%s %s failed: %s: %s", request.method, request.path, type(exc).__name__, exc)
        retry = [(k, v) for k, v in headers if k == "Retry-After"]
        if request.path.startswith("/burst/"):
            reply = json_response(code, {"error": type(exc).__name__})
            reply.headers += retry
            return reply
        return Response(code, page.store_error(exc, code, self.where(request)), retry)

    # --- the page -------------------------------------------------------------------------

    def main_page(self, session: Session, request: Request) -> Response:
        if session.is_expired and session.can_unexpire:
            return self.expired_page(session, request)
        visits = session.get("visits")  # a visitor can set "visits" to anything
        session["visits"] = (visits if type(visits) is int else 0) + 1
        if not isinstance(session.get(CSRF_KEY), str):
            session[CSRF_KEY] = secrets.token_urlsafe(24)
        session.write_close()  # saved before the page is drawn: it shows what is stored
        seen = id_hash(session.id)
        view = page.PageView(
            server=self.server(request),
            store=self.store_url,
            config=self.config,
            masked_id=mask(session.id),
            id_hash=seen,
            previous_hash=request.cookie(SEEN_COOKIE),
            is_new=session.is_new,
            is_expired=session.is_expired,
            is_bad_hash=session.is_bad_hash,
            user=session.user,
            stored=self.stored(session),
            expires_at=session.expires_at,
            idle_timeout=session.idle_timeout,
            absolute_timeout=session.absolute_timeout,
            data=dict(session.data),
            csrf=session[CSRF_KEY],
            tag=request.tag,
            done=request.query,
            user_sessions=session.user_sessions() if session.user else [],
            burst_modes=BURST_MODES,
        )
        body = page.render(view)
        return Response(200, body, [("Set-Cookie", self.demo_cookie(SEEN_COOKIE, seen))])

    def expired_page(self, session: Session, request: Request) -> Response:
        """The presented session expired but is kept: ask before replacing it.

        Nothing is saved, so the browser keeps its cookie and the next request can still
        bring the data back (unexpire() works on the request that presents the old id).
        """
        session.abort()
        token = secrets.token_urlsafe(24)
        body = page.expired(self.server(request), self.store_url, self.config, token)
        return Response(200, body, [("Set-Cookie", self.demo_cookie(CSRF_COOKIE, token))])

    def stored(self, session: Session) -> page.StoredView | None:
        """The record as the store holds it now (read back, so the page shows the truth)."""
        got = self.manager.store.read(session.storage_key)
        if not isinstance(got, Stored):
            return None
        header, data = unpack(got.payload)
        deadline = header.idle_deadline(got.expires_at)
        capped = deadline >= header.created + session.absolute_timeout
        last = header.last_access(got.expires_at, session.idle_timeout)
        return page.StoredView(
            created=header.created,
            last_access=None if capped else last,
            kept_until=got.expires_at if header.retention else None,
            data_bytes=len(data),
            payload_bytes=len(got.payload),
            version=got.version,
        )

    def server(self, request: Request) -> str:
        env = request.environ
        label = self.server_label or f"{env.get('SERVER_NAME')}:{env.get('SERVER_PORT')}"
        return f"{label} (pid {os.getpid()})"

    def where(self, request: Request) -> str:
        """The line naming the server and store, for pages that show little else."""
        return page.meta(self.server(request), self.store_url)

    def demo_cookie(self, name: str, value: str | None) -> str:
        """One of the demo's own cookies (None: delete it), built as the session cookie is,
        with its attributes (Secure, HttpOnly, SameSite, Path)."""
        config = self._cookie_configs.get(name)
        if config is None:
            config = self._cookie_configs[name] = replace(self.config, cookie_name=name)
        return set_cookie(config, CookieAction(value, None))

    # --- the forms (each behind the CSRF check) ---------------------------------------------

    def variable(self, session: Session, request: Request) -> Response:
        name = request.form.get("name", "").strip()[:100]
        action = request.form.get("action", "set")
        if not name or name.startswith("_"):
            return redirect("badname")
        if action == "get":
            return redirect("get", name=name)
        if action == "unset":
            session.pop(name, None)
            return redirect("unset", name=name)
        session[name] = request.form.get("value", "")[:1000]
        return redirect("set", name=name)

    def regenerate(self, session: Session, request: Request) -> Response:
        session.regenerate_id()
        return redirect("regenerated")

    def destroy(self, session: Session, request: Request) -> Response:
        session.destroy()
        return redirect("removed")

    def switch_tag(self, session: Session, request: Request) -> Response:
        other = "b" if request.tag == "a" else "a"
        response = redirect("tag", tag=other)
        response.headers.append(("Set-Cookie", self.demo_cookie(TAG_COOKIE, other)))
        return response

    def login(self, session: Session, request: Request) -> Response:
        name = " ".join(request.form.get("user", "").split())[:40]
        if not name:
            return redirect("badname")
        session.login(name)  # a new id, so an id planted before login is worth nothing
        session[CSRF_KEY] = secrets.token_urlsafe(24)  # and a new CSRF token with it
        return redirect("login")

    def logout(self, session: Session, request: Request) -> Response:
        session.logout()
        return redirect("logout")

    def logout_everywhere(self, session: Session, request: Request) -> Response:
        ended = session.logout_everywhere()
        return redirect("everywhere", n=ended)

    def unexpire(self, session: Session, request: Request) -> Response:
        done = "unexpired" if session.is_expired and session.unexpire() else "notkept"
        session[CSRF_KEY] = secrets.token_urlsafe(24)
        response = redirect(done)
        response.headers.append(("Set-Cookie", self.demo_cookie(CSRF_COOKIE, None)))
        return response

    def fresh(self, session: Session, request: Request) -> Response:
        session[CSRF_KEY] = secrets.token_urlsafe(24)  # stored, so the old cookie is replaced
        response = redirect("fresh")
        response.headers.append(("Set-Cookie", self.demo_cookie(CSRF_COOKIE, None)))
        return response

    # --- the burst panel --------------------------------------------------------------------

    def burst_state(self, request: Request) -> Response:
        session = self.manager.start(request.session_cookie, client=request.client, read_only=True)
        return json_response(200, {"counter": counter(session)})

    def burst_hit(self, request: Request) -> Response:
        """One of N parallel requests: read the counter, wait, write counter + 1.

        ``exclusive``: the lock is held the whole time, so the requests queue.
        ``release``: the session part first, then write_close() (PHP's
        session_write_close()), then the slow part, with the lock already free.
        ``optimistic``: no lock; the second writer of the same key gets SessionConflict.
        """
        mode = request.query.get("mode", "")
        if mode not in BURST_MODES:
            return json_response(400, {"error": f"mode must be one of {', '.join(BURST_MODES)}"})
        lock_mode: Literal["exclusive", "optimistic"] = (
            "optimistic" if mode == "optimistic" else "exclusive"
        )

        def hit(session: Session, req: Request) -> Response:
            if not same_token(req.environ.get(CSRF_HEADER, ""), session.get(CSRF_KEY)):
                session.abort()
                return json_response(403, {"error": "CSRF token missing or wrong"})
            value = counter(session)
            if mode == "release":
                session["burst"] = value + 1
                session.write_close()
                time.sleep(self.burst_delay)  # the slow part, after the lock is free
            else:
                time.sleep(self.burst_delay)  # the slow part, between read and write
                session["burst"] = value + 1
            return json_response(200, {"ok": True})

        try:
            return self.with_session(request, hit, lock_mode=lock_mode)
        except SessionConflict:  # reported to the client: no update is lost silently
            return json_response(409, {"conflict": True})


def make_app(
    store_url: str = "sqlite:///coatcheck-demo.db",
    config: Config | None = None,
    *,
    server_label: str | None = None,
    burst_delay: float = BURST_DELAY,
    clock: Callable[[], float] | None = None,
) -> DemoApp:
    """The demo as a WSGI app; ``config`` defaults to :func:`demo_config`.

    ``server_label`` names this server on the page (default: from the request);
    ``burst_delay`` is the slow part of each burst request; ``clock`` (Unix seconds) is
    for tests that let time pass.
    """
    return DemoApp(
        store_url, config, server_label=server_label, burst_delay=burst_delay, clock=clock
    )


def counter(session: Session) -> int:
    value = session.get("burst")
    return value if type(value) is int else 0


def same_token(sent: str, expected: object) -> bool:
    if not sent or not isinstance(expected, str) or not expected:
        return False
    return secrets.compare_digest(sent.encode(), expected.encode())


def mask(session_id: str) -> str:
    """The first 4 characters: enough to see the id change, useless to an onlooker."""
    return session_id[:4] + "…"


def id_hash(session_id: str) -> str:
    return hashlib.sha256(b"coatcheck-demo-seen\0" + session_id.encode()).hexdigest()[:16]
