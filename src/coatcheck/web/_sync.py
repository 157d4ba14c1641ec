# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The request lifecycle every web adapter runs, framework-free.

Written once as async code; the sync twin is generated from it (``make unasync``).

One request's session, from the cookie to the response headers: lazy load with the
route's options, the app's use, then :meth:`RequestSession.finish` with the status,
which saves (or aborts) and returns the headers to add. The adapters (ASGI, WSGI, Flask,
Django) only translate their framework's request and response to and from this.

:mod:`coatcheck.web._sync` is generated from this file by ``scripts/unasync.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

from ..config import LockMode
from ..engine import Client
from ..errors import CoatcheckError, SessionClosed, SessionNotLoaded
from ..session import Session, SessionManager
from .common import ANSWERED, RouteOptions, WebOptions, not_awaitable

log = logging.getLogger("coatcheck")


class RequestSession(MutableMapping[str, Any]):
    """One request's session: loaded on demand, saved by :meth:`finish`.

    A mapping of the session's data; :attr:`session` is the full
    :class:`~coatcheck.Session`. A request with no session cookie gets a fresh
    session on first use, with no store call. Under asyncio a cookie naming a stored
    session must be loaded (``load()``) before use, as a store read is I/O to wait
    for; the sync twin loads on first use.
    """

    def __init__(
        self,
        manager: SessionManager,
        options: WebOptions,
        cookie: str | None,
        client: Client,
        *,
        read_only: bool = False,
    ) -> None:
        self.manager = manager
        self.options = options
        self.cookie = cookie
        self.client = client
        self.route = RouteOptions(read_only=read_only)
        self._session: Session | None = None
        self._fresh = False  # begun without a store read
        self._used = False  # the app asked for the session (a fresh one may be begun early)
        self.failure: CoatcheckError | None = None  # a load error, for the response
        self.response_started = False

    # --- state --------------------------------------------------------------------------

    @property
    def names_stored_session(self) -> bool:
        """True when the cookie names a session (a well-formed id; with cookie://, any
        cookie), so loading means a store read."""
        return self.manager.names_session(self.cookie)

    @property
    def needs_load(self) -> bool:
        """True when using the session means a store read: a stored session, or an old
        session to migrate."""
        return self.names_stored_session or (self.options.migrate is not None and bool(self.cookie))

    @property
    def loaded(self) -> bool:
        """True once the session was read (or, with no stored session, begun) here."""
        return self._session is not None

    @property
    def used(self) -> bool:
        """True when the response depends on the session, so it gets the session headers."""
        s = self._session
        if s is None:
            return False
        return self._used or not self._fresh or s.data.accessed or len(s) > 0

    def begin(self) -> Session | None:
        """Begin a fresh session now when the cookie names none (no store call) without
        counting it as used: an adapter can then hand the app a real dict up front."""
        if self._session is None and not self.needs_load and not self.route.skip:
            self._begin()
        return self._session

    def _begin(self) -> Session:
        self._session = self.manager.begin(
            self.cookie,
            client=self.client,
            read_only=self.route.read_only,
            lock_mode=self.route.lock_mode,
        )
        self._fresh = True
        return self._session

    def configure(self, route: RouteOptions) -> None:
        """Set this route's options; only before the session is used."""
        if self._session is not None and not self._untouched_fresh():
            raise SessionClosed("session options must be set before the session is first used")
        self.route = RouteOptions(
            read_only=route.read_only or self.route.read_only,
            lock_mode=route.lock_mode,
            skip=route.skip,
        )
        if self._session is not None:  # a fresh session nobody used: begin it again as asked
            self._session = None

    @property
    def session(self) -> Session:
        """The coatcheck session; begins a fresh one when the cookie names none."""
        self._used = True
        if self._session is not None:
            return self._session
        self._check_usable()
        if self.needs_load:
            return self.load()
        session = self.begin()
        assert session is not None
        return session

    def load(self, *, read_only: bool | None = None, lock_mode: LockMode | None = None) -> Session:
        """Read the session (taking its lock unless read-only); the first load wins."""
        self._used = True
        asked = read_only is not None or lock_mode is not None
        if asked and (self._session is None or self._untouched_fresh()):
            lock_mode = lock_mode or self.route.lock_mode
            self.configure(
                RouteOptions(read_only=bool(read_only), lock_mode=lock_mode, skip=self.route.skip)
            )
        if self._session is not None:
            return self._session
        self._check_usable()
        route = self.route
        try:
            if self.names_stored_session:
                session = self.manager.start(
                    self.cookie,
                    client=self.client,
                    read_only=route.read_only,
                    lock_mode=route.lock_mode,
                )
                self._session = session
            else:
                session = self._begin()
            self._migrate(session)
        except ANSWERED as e:
            self.failure = e
            raise
        return session

    def finish(self, status: int) -> list[tuple[str, str]]:
        """Save the session (abort it for a failed response) and return the headers the
        response must carry: Set-Cookie, Vary and Cache-Control."""
        self.response_started = True
        if self.failure is not None and status >= 500:
            # The framework turned the load error into its own 500: answer with ours.
            raise self.failure
        s = self._session
        if s is None or not self.used:
            self.abort()  # a fresh session begun early and never used: nothing to do
            return []
        if not s.closed:
            if not self.options.saves(status):
                s.abort()  # the app failed: keep what was stored before it
            elif not s.read_only and not s.is_new and len(s) == 0:
                s.destroy()  # emptied (a logout by clear()): delete it, expire the cookie
            else:
                s.write_close()
                if self._fresh and s.cookie() is not None:
                    self._fresh_gc()
        return self.headers()

    def headers(self) -> list[tuple[str, str]]:
        """The headers a response that used the session carries (after :meth:`finish`)."""
        s = self._session
        if s is None or not self.used:
            return []
        out = [("Vary", "Cookie")]
        cookie = s.set_cookie_header()
        if cookie is not None:
            out.insert(0, ("Set-Cookie", cookie))
        if self.options.cache_control is not None:
            out.append(("Cache-Control", self.options.cache_control))
        return out

    def abort(self) -> None:
        """Close without writing and release any lock; quiet, as the request is failing."""
        if self._session is not None and not self._session.closed:
            try:
                self._session.abort()
            except Exception:
                log.warning("could not abort a session; its lock lease will expire", exc_info=True)

    def opt_out(self) -> None:
        """Give the session up for this request: no save, no cookie, no headers."""
        self.abort()
        self._session = None
        self.route = RouteOptions(skip=True)

    # --- what a request does with its session ---------------------------------------------

    def write_close(self) -> None:
        """Persist now and release the lock; reads still work (session_write_close).

        A session that was never used stays unused: no store call.
        """
        if self._session is not None:
            self._session.write_close()

    def regenerate(self, delete_old: bool = True, grace: float | None = None) -> None:
        """New id, same data: call right after login (session_regenerate_id)."""
        self.session.regenerate_id(delete_old=delete_old, grace=grace)

    def destroy(self) -> None:
        """Delete the session from the store; the cookie is expired (session_destroy)."""
        self.session.destroy()

    def remember(self, idle: float, absolute: float | None = None) -> None:
        """Per-session timeouts ("remember me"); the cookie becomes persistent."""
        self.session.remember(idle, absolute)

    # --- mapping --------------------------------------------------------------------------

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

    def __contains__(self, key: object) -> bool:
        return key in self.session

    def __repr__(self) -> str:  # never shows the id, never loads
        return f"<{type(self).__name__} loaded={self.loaded}>"

    # --- helpers --------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self.route.skip:
            raise SessionNotLoaded("this route opted out of the session (skip)")
        if self.failure is not None:
            raise self.failure  # the store already failed once in this request
        if self.response_started:
            # PHP refuses session_start() after output too: the cookie could not be sent.
            raise SessionClosed("the response has started; use the session before it")

    def _untouched_fresh(self) -> bool:
        s = self._session
        return self._fresh and s is not None and not s.closed and len(s) == 0

    def _migrate(self, s: Session) -> None:
        # Only a writable load migrates: the hook may consume the old record, and a
        # read-only session could not keep what it returned.
        migrate = self.options.migrate
        if migrate is None or not self.cookie or s.read_only:
            return
        if not s.is_new or s.is_expired or s.is_bad_hash:
            return
        old = not_awaitable(migrate(self.cookie))
        if old:
            s.update(old)  # a fresh id: the old one is never adopted

    def _fresh_gc(self) -> None:
        # PHP draws for GC at every session_start; a fresh session's start made no store
        # call, so its draw happens here, once its first write is done.
        if self.manager.engine.gc_due():
            try:
                self.manager.store.gc()
            except CoatcheckError:
                log.warning("session gc failed; it will run again later", exc_info=True)
