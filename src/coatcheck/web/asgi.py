"""ASGI middleware: ``request.session`` backed by a coatcheck async store.

PHP equivalent: ``session_start()`` when the script first needs ``$_SESSION`` and
``session_write_close()`` when the response is ready. Set it up with::

    app.add_middleware(SessionMiddleware, store="sqlite:///sessions.db")

The session goes where Starlette, FastAPI and Litestar look for it, ``scope["session"]``,
as a real ``dict`` (:class:`~coatcheck.SessionData`): ``JSONResponse(request.session)``,
``json.dumps``, ``dict(...)`` and ``==`` work as with Starlette's own sessions.

Reading a store is ``await``-ed I/O, and ``request.session["x"]`` is a plain lookup:

* A request whose cookie names no session (no cookie, or a malformed one) gets a fresh
  session at once, with no store call: there is nothing to read.
* A request whose cookie names a session must load it first:
  ``session = await load_session(request)`` (per route: ``read_only=True`` reads without a
  lock and never writes, PHP's ``read_and_close``; ``lock_mode="optimistic"``), or
  ``WebOptions(autoload=...)`` loads it before the app runs (True, path prefixes or
  regular expressions, as starsessions accepts them). Until then ``request.session``
  raises :class:`~coatcheck.SessionNotLoaded`; it is never silently empty.

Everything else is the one request lifecycle every adapter shares
(:mod:`coatcheck.web._async`): the session is saved when the app sends
``http.response.start`` (before any body), not at all when the app raised or answered 5xx;
:class:`~coatcheck.RetryLater` and :class:`~coatcheck.Conflict` errors become 503 (+
Retry-After) / 409 responses; other errors propagate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from ..config import Config, LockMode
from ..errors import CoatcheckError, ConfigError
from ..session import AsyncSession, AsyncSessionManager
from ..stores import AsyncStore, open_async_store
from ._async import AsyncRequestSession
from .common import (
    ANSWERED,
    RouteOptions,
    WebOptions,
    merge_headers,
    request_cookie,
    scope_client,
    scope_headers,
)

log = logging.getLogger("coatcheck")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SCOPE_KEY = "coatcheck"
"""Where the middleware puts each request's :class:`AsyncRequestSession` in the scope."""


class SessionMiddleware:
    """Pure ASGI middleware giving every HTTP and WebSocket request a coatcheck session.

    ``store``: an :class:`~coatcheck.AsyncSessionManager`, an :class:`~coatcheck.AsyncStore`
    or a store URL (then ``config`` applies). ``options``: the
    :class:`~coatcheck.web.common.WebOptions` every adapter takes. WebSocket connections
    get a read-only session (there is no response to carry a cookie).
    """

    def __init__(
        self,
        app: ASGIApp,
        store: AsyncSessionManager | AsyncStore | str,
        config: Config | None = None,
        *,
        options: WebOptions | None = None,
    ) -> None:
        self.app = app
        if isinstance(store, AsyncSessionManager):
            if config is not None:
                raise ConfigError("pass config with a store or URL; a manager has its own")
            self.manager = store
        else:
            opened = open_async_store(store) if isinstance(store, str) else store
            self.manager = AsyncSessionManager(opened, config or Config())
        self.options = options or WebOptions()
        self._owns_store = isinstance(store, str)  # closed at shutdown only if made here

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_store(send))
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = scope_headers(scope)
        client = scope_client(scope, headers, self.options)
        cookie = request_cookie(headers.get("cookie"), self.manager.config.cookie_name, client)
        websocket = scope["type"] == "websocket"
        request = AsyncRequestSession(
            self.manager, self.options, cookie, client, read_only=websocket
        )
        scope[SCOPE_KEY] = request
        try:
            if self.options.autoloads(scope.get("path", "")) and request.needs_load:
                await request.load()
        except ANSWERED as e:
            await self._send_error(send, e)
            return
        scope["session"] = _session_view(request)
        if websocket:
            try:
                await self.app(scope, receive, send)
            finally:
                await request.abort()
            return
        await self._run(request, scope, receive, send)

    async def _run(
        self, request: AsyncRequestSession, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = replaced = False

        async def send_with_session(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                try:
                    ours = await request.finish(message["status"])
                except ANSWERED as e:
                    replaced = True  # the app's answer is dropped: its changes were not saved
                    await request.abort()
                    await self._send_error(send, e)
                    return
                if ours:
                    message["headers"] = _to_raw(merge_headers(_from_raw(message), ours))
            elif replaced and message["type"] == "http.response.body":
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_session)
        except ANSWERED as e:
            await request.abort()
            if started:
                raise
            await self._send_error(send, e)
        finally:
            await request.abort()  # only does something when the app never answered

    async def _send_error(self, send: Send, exc: CoatcheckError) -> None:
        log.warning("session error answered with a status: %s", exc)
        status, headers, body = self.options.on_error(exc)
        if all(name.lower() != "content-length" for name, _ in headers):
            headers = [*headers, ("Content-Length", str(len(body)))]
        await send({"type": "http.response.start", "status": status, "headers": _to_raw(headers)})
        await send({"type": "http.response.body", "body": body})

    def _closing_store(self, send: Send) -> Send:
        async def send_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self._owns_store:
                await self.manager.store.close()
            await send(message)

        return send_closing


class Unloaded(MutableMapping[str, Any]):
    """``scope["session"]`` until a stored session is loaded: every use raises
    :class:`~coatcheck.SessionNotLoaded`, saying how to load it."""

    def __init__(self, request: AsyncRequestSession) -> None:
        self._request = request

    def __getitem__(self, key: str) -> Any:
        return self._request[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._request[key] = value

    def __delitem__(self, key: str) -> None:
        del self._request[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._request)

    def __len__(self) -> int:
        return len(self._request)

    def __repr__(self) -> str:
        return "<coatcheck session, not loaded>"


# --- in routes ------------------------------------------------------------------------------


async def load_session(
    request_or_scope: Any, *, read_only: bool = False, lock_mode: LockMode | None = None
) -> AsyncSession:
    """Load this request's session and return it (session_start).

    ``request_or_scope``: a framework request (anything with ``.scope``) or the ASGI scope.
    ``read_only``: no lock, no write (PHP's ``read_and_close``). ``lock_mode``: this
    route's mode, e.g. ``"optimistic"`` for a chatty JSON endpoint. A second call returns
    the session the first one loaded; ``request.session`` is its data from then on.
    """
    scope = _scope(request_or_scope)
    request = request_session(scope)
    session = await request.load(read_only=read_only or None, lock_mode=lock_mode)
    scope["session"] = session.data
    return session


async def no_session(request_or_scope: Any) -> None:
    """Opt this request out: an autoloaded session is released unsaved, and later use raises."""
    scope = _scope(request_or_scope)
    request = request_session(scope)
    await request.opt_out()
    scope["session"] = Unloaded(request)


def request_session(request_or_scope: Any) -> AsyncRequestSession:
    """The :class:`AsyncRequestSession` the middleware put in the request's scope."""
    found = _scope(request_or_scope).get(SCOPE_KEY)
    if not isinstance(found, AsyncRequestSession):
        raise ConfigError("coatcheck's SessionMiddleware is not installed around this app")
    return found


def configure_session(
    request_or_scope: Any,
    *,
    read_only: bool = False,
    lock_mode: LockMode | None = None,
    skip: bool = False,
) -> None:
    """Set this request's :class:`~coatcheck.web.common.RouteOptions` before first use."""
    scope = _scope(request_or_scope)
    request = request_session(scope)
    request.configure(RouteOptions(read_only=read_only, lock_mode=lock_mode, skip=skip))
    scope["session"] = _session_view(request)


# --- plumbing -------------------------------------------------------------------------------


def _session_view(request: AsyncRequestSession) -> MutableMapping[str, Any]:
    """What ``scope["session"]`` holds: the session's data, or :class:`Unloaded`."""
    session = request.begin() if not request.loaded else request.session
    return session.data if session is not None else Unloaded(request)


def _scope(request_or_scope: Any) -> Scope:
    scope = getattr(request_or_scope, "scope", request_or_scope)
    if not isinstance(scope, MutableMapping):
        raise ConfigError("pass a request or an ASGI scope")
    return scope


def _from_raw(message: Message) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])]


def _to_raw(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
