"""WSGI middleware: a coatcheck session for any WSGI app, at ``environ["coatcheck.session"]``.

PHP equivalent: ``session_start()`` on first use of ``$_SESSION``, and
``session_write_close()`` when the response headers are ready. Set it up with::

    from coatcheck.web.wsgi import SessionMiddleware
    app = SessionMiddleware(app, "sqlite:///sessions.db")

and in the app, ``session = environ["coatcheck.session"]`` (or :func:`get_session`).

The session is lazy: a request that never touches it makes no store call and gets no
cookie. The first touch reads it and, in ``exclusive`` mode, takes its lock, in one store
call. It is saved and the lock released when the app calls ``start_response`` (before any
body is sent, so the cookie can still go out), or earlier by ``write_close()``. A request
whose app raises, or answers with a 5xx, is not saved: the lock is released, the stored
data stays as it was. An outage or a race never escapes as a traceback: the store being
down or the lock busy is a 503, a conflicting concurrent change a 409.
"""

from __future__ import annotations

import functools
import http
import sys
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from .. import Client, Config, Session, SessionManager, open_store
from ..config import LockMode
from ..cookies import session_cookie
from ..errors import (
    CoatcheckError,
    ConfigError,
    LockLost,
    LockTimeout,
    SessionClosed,
    SessionConflict,
    StoreUnavailable,
)
from .common import WebOptions, environ_client, error_response, session_headers

ANSWERED = (StoreUnavailable, LockTimeout, LockLost, SessionConflict)
"""Errors the middleware turns into a 503 or 409 answer. Others (a read-only session
written to, a session too large to store) are bugs in the app and propagate as such."""

ENVIRON_KEY = "coatcheck.session"
"""Where the middleware puts each request's :class:`WSGISession` in the WSGI environ."""

Headers = list[tuple[str, str]]
A = TypeVar("A", bound=WSGIApplication)


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How one request uses the session; set with :func:`configure_session` before first use.

    ``read_only``: read without a lock and never write (PHP's ``read_and_close``).
    ``lock_mode``: overrides ``Config.lock_mode`` for this request (e.g. ``"optimistic"``).
    ``skip``: no session at all; touching it raises :class:`~coatcheck.SessionClosed`.
    """

    read_only: bool = False
    lock_mode: LockMode | None = None
    skip: bool = False


class WSGISession(MutableMapping[str, Any]):
    """One request's session: loaded on first touch, saved by the middleware.

    A mapping of JSON-able values, plus the PHP calls a request needs (:meth:`write_close`,
    :meth:`regenerate`, :meth:`destroy`). :attr:`core` is the full
    :class:`~coatcheck.Session` for anything else.
    """

    def __init__(self, manager: SessionManager, cookie: str | None, client: Client) -> None:
        self._manager = manager
        self._cookie = cookie
        self._client = client
        self._session: Session | None = None
        self._load_error: CoatcheckError | None = None
        self._response_started = False
        self.options = RouteOptions()

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the store was read for this request."""
        return self._session is not None

    @property
    def core(self) -> Session:
        """The coatcheck session, loaded (and locked) on first use."""
        if self._session is None:
            self._session = self._load()
        return self._session

    def _load(self) -> Session:
        if self._load_error is not None:
            raise self._load_error  # the store already failed once in this request
        if self.options.skip:
            raise SessionClosed("the session is switched off for this request (skip=True)")
        if self._response_started:
            # PHP refuses session_start() after output too: the cookie could not be sent.
            raise SessionClosed("the response has started; use the session before start_response")
        try:
            return self._manager.start(
                self._cookie,
                client=self._client,
                read_only=self.options.read_only,
                lock_mode=self.options.lock_mode,
            )
        except ANSWERED as e:
            self._load_error = e
            raise

    def configure(
        self, *, read_only: bool = False, lock_mode: LockMode | None = None, skip: bool = False
    ) -> None:
        """Set this request's :class:`RouteOptions`; only before the session is first used."""
        if self.started:
            raise SessionClosed("session options must be set before the session is first used")
        self.options = replace(self.options, read_only=read_only, lock_mode=lock_mode, skip=skip)

    def write_close(self) -> None:
        """Persist now and release the lock; reads still work (session_write_close).

        A session that was never touched stays untouched: no store call.
        """
        if self._session is not None:
            self._session.write_close()

    def regenerate(self, delete_old: bool = True, grace: float | None = None) -> None:
        """New id, same data: call right after login (session_regenerate_id)."""
        self.core.regenerate_id(delete_old=delete_old, grace=grace)

    def destroy(self) -> None:
        """Delete the session from the store; the cookie is expired (session_destroy)."""
        self.core.destroy()

    def remember(self, idle: float, absolute: float | None = None) -> None:
        """Per-session timeouts ("remember me"); the cookie becomes persistent."""
        self.core.remember(idle, absolute)

    @property
    def is_new(self) -> bool:
        """True when this request started a new session (no usable one was presented)."""
        return self.core.is_new

    @property
    def is_expired(self) -> bool:
        return self.core.is_expired

    @property
    def is_bad_hash(self) -> bool:
        return self.core.is_bad_hash

    # --- mapping ------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.core[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.core[key] = value

    def __delitem__(self, key: str) -> None:
        del self.core[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.core)

    def __len__(self) -> int:
        return len(self.core)

    def __repr__(self) -> str:  # never shows the id, never loads
        return f"<WSGISession started={self.started}>"


class SessionMiddleware:
    """Wraps a WSGI app and gives every request a lazy :class:`WSGISession`.

    ``manager_or_url``: a :class:`~coatcheck.SessionManager`, or a store URL (then
    ``config`` applies). ``options``: trusted proxies for the client address, and
    ``save_on_error`` (5xx responses are not saved unless it is set). ``headers``: added to
    responses that used the session (default ``Vary: Cookie`` and ``Cache-Control: private,
    no-store``; ``()`` adds none). ``conflict_status``: the answer to a concurrent-change conflict.
    """

    def __init__(
        self,
        app: WSGIApplication,
        manager_or_url: SessionManager | str,
        config: Config | None = None,
        *,
        options: WebOptions | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        conflict_status: int = 409,
    ) -> None:
        if isinstance(manager_or_url, str):
            manager = SessionManager(open_store(manager_or_url), config or Config())
        elif config is not None:
            raise ConfigError("pass config with a store URL; a SessionManager has its own")
        else:
            manager = manager_or_url
        self.app = app
        self.manager = manager
        self.options = options or WebOptions()
        self.headers: Headers = list(session_headers() if headers is None else headers)
        self.conflict_status = conflict_status

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        cookie = session_cookie(environ.get("HTTP_COOKIE"), self.manager.config.cookie_name)
        client = environ_client(environ, self.options)
        session = WSGISession(self.manager, cookie, client)
        environ[ENVIRON_KEY] = session
        exchange = _Exchange(self, session, start_response)
        try:
            return exchange.run(self.app, environ)
        except ANSWERED as e:  # at first touch, or from write_close() in the app
            _abort(session)
            return exchange.fail(e)
        except BaseException:
            _abort(session)
            raise

    def finish(self, session: WSGISession, status: int) -> Headers:
        """Save (or abort) ``session`` for a response with ``status``; the headers to add."""
        if session._load_error is not None and status >= 500:
            # A framework turned the load error into its own 500: answer with ours instead.
            raise session._load_error
        if session._session is None:
            return []
        core = session._session
        if not core.closed:
            if not self.options.saves(status):
                core.abort()  # the app failed: keep what was stored before it
            else:
                core.write_close()
        cookie = core.set_cookie_header()
        return [("Set-Cookie", cookie), *self.headers] if cookie else list(self.headers)

    def error_reply(self, exc: CoatcheckError) -> tuple[str, Headers, bytes]:
        """Status line, headers and body for a coatcheck error that ends the request."""
        code, headers, body = error_response(exc)
        if code == 409:
            code = self.conflict_status
        return _status_line(code), headers, body


class _Exchange:
    """One request passing through the middleware: watches start_response, wraps the body."""

    def __init__(
        self, middleware: SessionMiddleware, session: WSGISession, start_response: StartResponse
    ) -> None:
        self.mw = middleware
        self.session = session
        self.server_start = start_response
        self.called = False
        self.extra: Headers = []
        self.error_body: bytes | None = None  # set when an error reply replaced the app's

    def start_response(self, status: str, headers: Headers, exc_info: Any = None) -> Any:
        if self.error_body is not None:
            return _discard  # our error reply already replaced this response
        if not self.called:
            self.called = True
            self.session._response_started = True
            try:
                self.extra = self.mw.finish(self.session, _status_code(status))
            except ANSWERED as e:
                line, err_headers, self.error_body = self.mw.error_reply(e)
                self.server_start(line, err_headers, exc_info)
                return _discard
        return self.server_start(status, _merge(headers, self.extra), exc_info)

    def run(self, app: WSGIApplication, environ: WSGIEnvironment) -> Iterable[bytes]:
        body = app(environ, self.start_response)
        head: list[bytes] = []
        chunks: Iterator[bytes] = iter(())
        try:
            # A generator app calls start_response on its first step: take that step now,
            # so the session is saved (and errors answered) before we hand back the body.
            chunks = iter(body)
            while not self.called:
                head.append(next(chunks))
        except StopIteration:
            pass
        except BaseException:
            _close(body)
            raise
        if self.error_body is not None:
            _close(body)
            return [self.error_body]
        if not self.called:  # a broken app: no start_response at all; the server will say so
            _abort(self.session)
        # Past start_response the session is saved or aborted and holds no lock, so
        # the body itself passes through untouched (keeping wsgi.file_wrapper working).
        return _Body(head, chunks, body) if head else body

    def fail(self, exc: CoatcheckError) -> Iterable[bytes]:
        line, headers, body = self.mw.error_reply(exc)
        # start_response may be called again only with exc_info, to replace unsent headers.
        self.server_start(line, headers, sys.exc_info() if self.called else None)
        self.called = True
        return [body]


class _Body:
    """The body after chunks already taken from it; close() reaches the app's iterable."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes], body: Iterable[bytes]) -> None:
        self._head = head
        self._rest = rest
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        _close(self._body)


# --- per-route options --------------------------------------------------------------------


def get_session(environ: WSGIEnvironment) -> WSGISession:
    """The request's session (``environ["coatcheck.session"]``), typed."""
    session = environ.get(ENVIRON_KEY)
    if not isinstance(session, WSGISession):
        raise RuntimeError("no coatcheck session in environ; wrap the app in SessionMiddleware")
    return session


def configure_session(
    environ: WSGIEnvironment,
    *,
    read_only: bool = False,
    lock_mode: LockMode | None = None,
    skip: bool = False,
) -> None:
    """Set this request's :class:`RouteOptions` before the session is first touched."""
    get_session(environ).configure(read_only=read_only, lock_mode=lock_mode, skip=skip)


def session_options(
    *, read_only: bool = False, lock_mode: LockMode | None = None, skip: bool = False
) -> Callable[[A], A]:
    """Decorate a WSGI callable so its requests use the session as :class:`RouteOptions` says."""

    def wrap(app: A) -> A:
        @functools.wraps(app)
        def with_options(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
            configure_session(environ, read_only=read_only, lock_mode=lock_mode, skip=skip)
            return app(environ, start_response)

        return with_options  # type: ignore[return-value]

    return wrap


def read_only(app: A) -> A:
    """Shorthand for ``@session_options(read_only=True)``."""
    return session_options(read_only=True)(app)


# --- helpers ------------------------------------------------------------------------------


def _abort(session: WSGISession) -> None:
    """Release the lock of a session the app left open; the request is failing anyway."""
    core = session._session
    if core is not None and not core.closed:
        core.abort()


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


def _discard(data: bytes) -> None:
    """The write() callable for an app whose response was replaced by an error reply."""


def _status_code(status: str) -> int:
    try:
        return int(status.split(None, 1)[0])
    except (ValueError, IndexError):
        return 500  # a malformed status line: treat as a failure, save nothing


def _status_line(code: int) -> str:
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Error"


def _merge(headers: Headers, extra: Headers) -> Headers:
    """The app's headers plus ours. Vary gains Cookie; our other headers replace the app's."""
    if not extra:
        return headers
    out = list(headers)
    for name, value in extra:
        lower = name.lower()
        if lower == "set-cookie":
            out.append((name, value))
        elif lower == "vary":
            out = _add_vary(out, name, value)
        else:
            out = [(n, v) for n, v in out if n.lower() != lower]
            out.append((name, value))
    return out


def _add_vary(headers: Headers, name: str, value: str) -> Headers:
    for i, (n, v) in enumerate(headers):
        if n.lower() == "vary":
            tokens = {t.strip().lower() for t in v.split(",")}
            if "*" in tokens or value.lower() in tokens:
                return headers
            headers[i] = (n, f"{v}, {value}")
            return headers
    return [*headers, (name, value)]
