"""ASGI middleware: ``request.session`` backed by a coatcheck async store.

PHP equivalent: ``session_start()`` when the script first needs ``$_SESSION`` and
``session_write_close()`` when the response is ready. Set it up with::

    app.add_middleware(CoatcheckMiddleware, store="sqlite:///sessions.db")

The session is put where Starlette, FastAPI and Litestar look for it, ``scope["session"]``,
as a :class:`LazySession`: nothing is read until the app asks.

Loading is explicit, because reading a store is ``await``-ed I/O and ``request.session["x"]``
is a plain synchronous lookup that cannot wait:

* A request whose cookie names no session (no cookie, or a malformed one) gets a fresh,
  usable session on first touch, with no store call: there is nothing to read.
* A request whose cookie names a session must load it first:
  ``session = await load_session(request)`` (per route: ``read_only=True`` reads without a
  lock and never writes, PHP's ``read_and_close``; ``lock_mode="optimistic"``), or the
  middleware's ``autoload`` (True, or path prefixes) loads it before the app runs. Touching
  an unloaded session raises :class:`SessionNotLoaded`; it is never silently empty.

A request that never touches the session costs no store call and gets no cookie. The lock
(``exclusive`` mode) is taken at load and released by ``await session.write_close()`` or when
the app sends ``http.response.start``: the session is saved then, before any body, and not
at all when the app raised or answered 5xx. Store outages, lock timeouts and conflicts
become 503 (+ Retry-After) / 409 responses, at load and at save.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from .. import ids
from ..config import Config, LockMode
from ..cookies import session_cookie
from ..engine import Client
from ..errors import (
    CoatcheckError,
    ConfigError,
    LockLost,
    LockTimeout,
    SessionConflict,
    StoreUnavailable,
)
from ..session import AsyncSession, AsyncSessionManager
from ..stores import AsyncStore, open_async_store
from .common import WebOptions, error_response, scope_client, scope_headers, session_headers

log = logging.getLogger("coatcheck")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ErrorMapper = Callable[[CoatcheckError], tuple[int, list[tuple[str, str]], bytes]]
Migrate = Callable[[str], Awaitable[Mapping[str, Any] | None]]

# The errors that are the store's or another request's doing, answered with a status.
# Others (SessionClosed, EncodeError, SessionNotLoaded…) are bugs in the app and propagate.
MAPPED_ERRORS = (StoreUnavailable, LockTimeout, SessionConflict, LockLost)


class SessionNotLoaded(CoatcheckError, RuntimeError):
    """The app touched a session that names a stored session before loading it."""


class CoatcheckMiddleware:
    """Pure ASGI middleware giving every HTTP request a lazy coatcheck session.

    ``store``: an :class:`~coatcheck.AsyncSessionManager`, an
    :class:`~coatcheck.AsyncStore` or a store URL (then ``config`` applies).
    ``autoload``: load a cookie's session before the app runs, for every path (True) or
    for paths under the given prefixes. ``options``: trusted proxies and ``save_on_error``
    (:class:`~coatcheck.web.common.WebOptions`). ``cache_control``: the Cache-Control value
    for responses that used the session (None leaves it alone); an app's own Cache-Control
    is kept. ``on_error``: maps StoreUnavailable, LockTimeout, SessionConflict and LockLost
    to (status, headers, body).
    ``migrate``: awaited with the raw cookie value when the cookie names no coatcheck
    session; it may return the data of a session from the old store (starsessions, say),
    which is copied into a fresh coatcheck session under a new id (on the first writable
    load; read-only loads leave the old session alone).
    """

    def __init__(
        self,
        app: ASGIApp,
        store: AsyncSessionManager | AsyncStore | str,
        config: Config | None = None,
        *,
        options: WebOptions | None = None,
        autoload: bool | Sequence[str] = False,
        cache_control: str | None = dict(session_headers())["Cache-Control"],
        on_error: ErrorMapper = error_response,
        migrate: Migrate | None = None,
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
        if isinstance(autoload, str):
            raise ConfigError("autoload takes True or a list of path prefixes, not one string")
        self.autoload: bool | tuple[str, ...] = (
            autoload if isinstance(autoload, bool) else tuple(autoload)
        )
        self.cache_control = cache_control
        self.on_error = on_error
        self.migrate = migrate
        self._opened = False
        self._owns_store = isinstance(store, str)  # closed at shutdown only if made here

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_store(send))
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        slot = LazySession(self, scope)
        scope["session"] = slot
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)  # no response to carry a cookie: read-only
            return
        if self._autoloads(scope.get("path", "")) and slot.needs_load:
            try:
                await slot.load()
            except MAPPED_ERRORS as e:
                await self._send_error(send, e)
                return
        await self._run(slot, scope, receive, send)

    async def _run(self, slot: LazySession, scope: Scope, receive: Receive, send: Send) -> None:
        started = replaced = False

        async def send_with_session(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] == "http.response.start":
                started = True
                try:
                    if slot.failure is not None and message["status"] >= 500:
                        # The framework turned our load error into its own 500 (Quart and
                        # Litestar handle exceptions inside): answer with ours instead.
                        raise slot.failure
                    extra = await slot.finish(message["status"])
                except MAPPED_ERRORS as e:
                    replaced = True  # the app's answer is dropped: its changes were not saved
                    await slot.abort()
                    await self._send_error(send, e)
                    return
                message["headers"] = self._with_headers(list(message.get("headers", [])), extra)
            elif replaced and message["type"] == "http.response.body":
                return
            await send(message)

        try:
            await self.app(scope, receive, send_with_session)
        except MAPPED_ERRORS as e:
            await slot.abort()
            if started:
                raise
            await self._send_error(send, e)
        finally:
            await slot.abort()  # only does something when the app never answered

    # --- helpers ------------------------------------------------------------------------

    def _autoloads(self, path: str) -> bool:
        if isinstance(self.autoload, bool):
            return self.autoload
        return path.startswith(self.autoload)

    def _with_headers(
        self, headers: list[tuple[bytes, bytes]], extra: list[tuple[str, str]]
    ) -> list[tuple[bytes, bytes]]:
        names = {name.lower() for name, _ in headers}
        for name, value in extra:
            key = name.lower().encode("latin-1")
            if key == b"vary":
                headers = _add_vary(headers, value)
            elif key == b"cache-control":
                if self.cache_control is not None and key not in names:
                    headers.append((key, self.cache_control.encode("latin-1")))
            else:
                headers.append((key, value.encode("latin-1")))
        return headers

    async def _send_error(self, send: Send, exc: CoatcheckError) -> None:
        log.warning("session error answered with a status: %s", exc)
        status, headers, body = self.on_error(exc)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if all(name != b"content-length" for name, _ in raw):
            raw.append((b"content-length", str(len(body)).encode("ascii")))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    async def open_store(self) -> None:
        """Open the store before its first use, not at start-up: a store that is down
        must not fail requests that never touch the session."""
        if not self._opened:
            await self.manager.store.open()  # idempotent, so a race here is harmless
            self._opened = True

    def _closing_store(self, send: Send) -> Send:
        async def send_closing(message: Message) -> None:
            done = message["type"] == "lifespan.shutdown.complete"
            if done and self._opened and self._owns_store:
                await self.manager.store.close()
                self._opened = False
            await send(message)

        return send_closing


class LazySession(MutableMapping[str, Any]):
    """``scope["session"]``: one request's session, loaded on demand.

    Mapping access works at once when the cookie names no session (a fresh session, no
    store call); otherwise it needs :func:`load_session` (or ``autoload``) first.
    """

    def __init__(self, middleware: CoatcheckMiddleware, scope: Scope) -> None:
        self._mw = middleware
        headers = scope_headers(scope)
        config = middleware.manager.config
        self._cookie = session_cookie(headers.get("cookie"), config.cookie_name)
        self._client = scope_client(scope, headers, middleware.options)
        self._websocket = scope["type"] == "websocket"
        self._session: AsyncSession | None = None
        self._fresh = False
        self._opted_out = False
        self.failure: CoatcheckError | None = None  # a load error, for the response

    # --- state --------------------------------------------------------------------------

    @property
    def names_stored_session(self) -> bool:
        """True when the cookie carries a well-formed id, so loading means a store read."""
        return ids.is_well_formed(self._cookie, self._mw.manager.config.id_bytes)

    @property
    def needs_load(self) -> bool:
        """True when using the session needs an ``await`` first: a store read, or an old
        session to migrate."""
        return self.names_stored_session or (self._mw.migrate is not None and bool(self._cookie))

    @property
    def loaded(self) -> bool:
        """True once the session was read (or, with no stored session, begun) here."""
        return self._session is not None

    @property
    def client(self) -> Client:
        """The client as fingerprints see it (its address resolved through trusted proxies)."""
        return self._client

    @property
    def session(self) -> AsyncSession:
        """The coatcheck session; raises SessionNotLoaded when it must be loaded first."""
        if self._session is not None:
            return self._session
        if self._opted_out:
            raise SessionNotLoaded("this route opted out of the session (no_session)")
        if self.needs_load:
            raise SessionNotLoaded(
                "the session cookie names a stored session that is not loaded yet: "
                "'await coatcheck.web.asgi.load_session(request)' before using "
                "request.session, or pass autoload=True (or path prefixes) to "
                "CoatcheckMiddleware"
            )
        self._session = self._mw.manager.begin(
            self._cookie, client=self._client, read_only=self._websocket
        )
        self._fresh = True
        return self._session

    async def load(
        self, *, read_only: bool = False, lock_mode: LockMode | None = None
    ) -> AsyncSession:
        """Read the session (taking its lock unless read-only); the first load wins."""
        if self._session is not None:
            return self._session
        if self._opted_out:
            raise SessionNotLoaded("this route opted out of the session (no_session)")
        read_only = read_only or self._websocket
        manager = self._mw.manager
        try:
            if self.names_stored_session:
                await self._mw.open_store()
                self._session = await manager.start(
                    self._cookie, client=self._client, read_only=read_only, lock_mode=lock_mode
                )
            else:  # nothing to read; GC is drawn when the response is saved (_fresh_gc)
                self._session = manager.begin(
                    self._cookie, client=self._client, read_only=read_only, lock_mode=lock_mode
                )
                self._fresh = True
            await self._migrate(self._session)
        except MAPPED_ERRORS as e:
            self.failure = e
            raise
        return self._session

    async def finish(self, status: int) -> list[tuple[str, str]]:
        """Save (or, on 5xx, abort) and return the headers the response must carry."""
        s = self._session
        if s is None:
            return []
        if not s.closed:
            await self._mw.open_store()
            if not self._mw.options.saves(status):
                await s.abort()
            else:
                await s.write_close()
                await self._fresh_gc(s)
        cookie = s.set_cookie_header()
        extra = [("Set-Cookie", cookie)] if cookie is not None else []
        return extra + session_headers()

    async def abort(self) -> None:
        """Close without writing and release any lock; does nothing once closed."""
        if self._session is not None and not self._session.closed:
            try:
                await self._session.abort()
            except Exception:
                log.warning("could not abort a session; its lock lease will expire", exc_info=True)

    async def opt_out(self) -> None:
        """Give the session up for this request: no save, no cookie, no headers."""
        await self.abort()
        self._session = None
        self._opted_out = True

    async def _migrate(self, s: AsyncSession) -> None:
        # Only a writable load migrates: the old record may be consumed by ``migrate``, and
        # a read-only session could not keep what it returned.
        migrate = self._mw.migrate
        if migrate is None or not self._cookie or s.read_only:
            return
        if not s.is_new or s.is_expired or s.is_bad_hash:
            return
        old = await migrate(self._cookie)
        if old:
            s.update(old)  # a fresh id: the old one is never adopted

    async def _fresh_gc(self, s: AsyncSession) -> None:
        # PHP draws for GC at every session_start; a fresh session's start made no store
        # call, so its draw happens here, once the response's own write is done.
        if self._fresh and not s.read_only and self._mw.manager.engine.gc_due():
            try:
                await self._mw.manager.store.gc()
            except CoatcheckError:
                log.warning("session gc failed; it will run again later", exc_info=True)

    # --- mapping ------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.session[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.session[key] = value

    def __delitem__(self, key: str) -> None:
        del self.session[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.session)

    def __len__(self) -> int:
        return len(self.session)

    def mark_accessed(self) -> None:
        """Starlette calls this on ``request.session``; only a key access costs anything."""

    def __repr__(self) -> str:  # never shows the id, never loads
        return f"<LazySession loaded={self.loaded}>"


# --- in routes ------------------------------------------------------------------------------


async def load_session(
    request_or_scope: Any, *, read_only: bool = False, lock_mode: LockMode | None = None
) -> AsyncSession:
    """Load this request's session and return it (session_start).

    ``request_or_scope``: a framework request (anything with ``.scope``) or the ASGI scope.
    ``read_only``: no lock, no write (PHP's ``read_and_close``). ``lock_mode``: this
    route's mode, e.g. ``"optimistic"`` for a chatty JSON endpoint. A second call returns
    the session the first one loaded.
    """
    return await lazy_session(request_or_scope).load(read_only=read_only, lock_mode=lock_mode)


async def no_session(request_or_scope: Any) -> None:
    """Opt this request out: an autoloaded session is released unsaved, and later use raises."""
    await lazy_session(request_or_scope).opt_out()


def lazy_session(request_or_scope: Any) -> LazySession:
    """The :class:`LazySession` the middleware put in the request's scope."""
    scope = getattr(request_or_scope, "scope", request_or_scope)
    slot = scope.get("session") if isinstance(scope, MutableMapping) else None
    if not isinstance(slot, LazySession):
        raise ConfigError("CoatcheckMiddleware is not installed around this app")
    return slot


# --- plumbing -------------------------------------------------------------------------------


def _add_vary(headers: list[tuple[bytes, bytes]], value: str) -> list[tuple[bytes, bytes]]:
    for i, (name, current) in enumerate(headers):
        if name.lower() == b"vary":
            parts = [p.strip().lower() for p in current.decode("latin-1").split(",")]
            if value.lower() not in parts and "*" not in parts:
                headers[i] = (name, current + b", " + value.encode("latin-1"))
            return headers
    headers.append((b"vary", value.encode("latin-1")))
    return headers
