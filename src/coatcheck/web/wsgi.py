"""WSGI middleware: a coatcheck session for any WSGI app, at ``environ["coatcheck.session"]``.

PHP equivalent: ``session_start()`` on first use of ``$_SESSION``, and
``session_write_close()`` when the response headers are ready. Set it up with::

    from coatcheck.web.wsgi import SessionMiddleware
    app = SessionMiddleware(app, "sqlite:///sessions.db")

and in the app, ``session = environ["coatcheck.session"]`` (or :func:`get_session`).

The session is lazy: a request that never touches it makes no store call and gets no
cookie. The first touch reads it and, in ``exclusive`` mode, takes its lock, in one store
call. It is saved and the lock released when the app calls ``start_response`` (before any
body is sent, so the cookie can still go out), or earlier by ``write_close()``. Everything
else is the one request lifecycle every adapter shares (:mod:`coatcheck.web._sync`): a
request whose app raises or answers 5xx is not saved; :class:`~coatcheck.RetryLater` and
:class:`~coatcheck.Conflict` errors become 503 (+ Retry-After) / 409 answers; other errors
propagate.
"""

from __future__ import annotations

import functools
import http
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from .. import Config, SessionManager, open_store
from ..config import LockMode
from ..errors import CoatcheckError, ConfigError
from ..stores import Store
from ._sync import RequestSession
from .common import (
    ANSWERED,
    RouteOptions,
    WebOptions,
    environ_client,
    merge_headers,
    request_cookie,
)

ENVIRON_KEY = "coatcheck.session"
"""Where the middleware puts each request's :class:`~coatcheck.web._sync.RequestSession`."""

Headers = list[tuple[str, str]]
A = TypeVar("A", bound=WSGIApplication)


class SessionMiddleware:
    """Wraps a WSGI app and gives every request a lazy session.

    ``store``: a :class:`~coatcheck.SessionManager`, a :class:`~coatcheck.Store` or a store
    URL (then ``config`` applies). ``options``: the
    :class:`~coatcheck.web.common.WebOptions` every adapter takes.
    """

    def __init__(
        self,
        app: WSGIApplication,
        store: SessionManager | Store | str,
        config: Config | None = None,
        *,
        options: WebOptions | None = None,
    ) -> None:
        if isinstance(store, SessionManager):
            if config is not None:
                raise ConfigError("pass config with a store or URL; a manager has its own")
            self.manager = store
        else:
            opened = open_store(store) if isinstance(store, str) else store
            self.manager = SessionManager(opened, config or Config())
        self.app = app
        self.options = options or WebOptions()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        client = environ_client(environ, self.options)
        cookie = request_cookie(environ.get("HTTP_COOKIE"), self.manager.config.cookie_name, client)
        request = RequestSession(self.manager, self.options, cookie, client)
        environ[ENVIRON_KEY] = request
        exchange = _Exchange(self, request, start_response)
        try:
            if self.options.autoloads(environ.get("PATH_INFO", "")) and request.needs_load:
                request.load()
            return exchange.run(self.app, environ)
        except ANSWERED as e:  # at first touch, or from write_close() in the app
            request.abort()
            return exchange.fail(e)
        except BaseException:
            request.abort()
            raise

    def error_reply(self, exc: CoatcheckError) -> tuple[str, Headers, bytes]:
        """Status line, headers and body for a coatcheck error that ends the request."""
        code, headers, body = self.options.on_error(exc)
        return _status_line(code), headers, body


class _Exchange:
    """One request passing through the middleware: watches start_response, wraps the body."""

    def __init__(
        self, middleware: SessionMiddleware, request: RequestSession, start_response: StartResponse
    ) -> None:
        self.mw = middleware
        self.request = request
        self.server_start = start_response
        self.called = False
        self.extra: Headers = []
        self.error_body: bytes | None = None  # set when an error reply replaced the app's

    def start_response(self, status: str, headers: Headers, exc_info: Any = None) -> Any:
        if self.error_body is not None:
            return _discard  # our error reply already replaced this response
        if not self.called:
            self.called = True
            try:
                self.extra = self.request.finish(_status_code(status))
            except ANSWERED as e:
                self.request.abort()
                line, err_headers, self.error_body = self.mw.error_reply(e)
                self.server_start(line, err_headers, exc_info)
                return _discard
        headers = merge_headers(headers, self.extra) if self.extra else headers
        return self.server_start(status, headers, exc_info)

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
            self.request.abort()
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


# --- in the app ---------------------------------------------------------------------------


def get_session(environ: WSGIEnvironment) -> RequestSession:
    """The request's session (``environ["coatcheck.session"]``), typed."""
    session = environ.get(ENVIRON_KEY)
    if not isinstance(session, RequestSession):
        raise ConfigError("no coatcheck session in environ; wrap the app in SessionMiddleware")
    return session


def configure_session(
    environ: WSGIEnvironment,
    *,
    read_only: bool = False,
    lock_mode: LockMode | None = None,
    skip: bool = False,
) -> None:
    """Set this request's :class:`~coatcheck.web.common.RouteOptions` before first use."""
    options = RouteOptions(read_only=read_only, lock_mode=lock_mode, skip=skip)
    get_session(environ).configure(options)


def session_options(
    *, read_only: bool = False, lock_mode: LockMode | None = None, skip: bool = False
) -> Callable[[A], A]:
    """Decorate a WSGI callable so its requests use the session as the options say."""

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
