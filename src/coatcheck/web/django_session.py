"""The Django session engine: ``SESSION_ENGINE = "coatcheck.django"``.

``request.session`` is a :class:`SessionStore`: Django's ``SessionBase`` over a
:class:`~coatcheck.web._sync.RequestSession`, the request lifecycle every coatcheck adapter
runs. Settings live in one dict::

    COATCHECK = {"STORE": "sqlite:///sessions.db", "CONFIG": {...}, "WEB": {...}}

Django's session settings are the defaults of ``CONFIG``: ``SESSION_COOKIE_*`` the cookie,
``SESSION_COOKIE_AGE`` the idle timeout and the cookie's Max-Age,
``SESSION_EXPIRE_AT_BROWSER_CLOSE`` a browser-session cookie. See docs/web/django.md.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, MutableMapping
from contextvars import ContextVar
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings  # type: ignore[import-untyped]
from django.contrib.auth.signals import user_logged_in  # type: ignore[import-untyped]
from django.contrib.sessions.backends.base import (  # type: ignore[import-untyped]
    SessionBase,
    UpdateError,
)
from django.core.signals import request_finished, request_started  # type: ignore[import-untyped]

from .. import Client, Config, Session, SessionManager, ids, open_store
from ..cookies import CookieAction
from ..errors import CoatcheckError, ConfigError, LockLost, SessionGone
from ._sync import RequestSession
from .common import RouteOptions, WebOptions, environ_client, scope_client, scope_headers

log = logging.getLogger("coatcheck")
EXPIRY = "_session_expiry"  # where Django's set_expiry() keeps its value, in the data
GONE = "the session was deleted by another request (a logout elsewhere?) before this save"
Headers = list[tuple[str, str]]

# --- settings -------------------------------------------------------------------------------

_setups: dict[str, tuple[SessionManager, WebOptions]] = {}


def manager() -> SessionManager:
    """The SessionManager for the current ``settings.COATCHECK`` (one per distinct value)."""
    return _setup()[0]


def web_options() -> WebOptions:
    """The WebOptions of ``COATCHECK["WEB"]`` (and ``COATCHECK["MIGRATE_FROM"]``)."""
    return _setup()[1]


def _setup() -> tuple[SessionManager, WebOptions]:
    conf = getattr(settings, "COATCHECK", None)
    if not isinstance(conf, dict) or not conf.get("STORE"):
        raise ConfigError('set COATCHECK = {"STORE": "<store url>"} in the Django settings')
    names = ("NAME", "PATH", "DOMAIN", "SECURE", "HTTPONLY", "SAMESITE", "AGE")
    django = [getattr(settings, f"SESSION_COOKIE_{n}") for n in names]
    chosen = settings.is_overridden("SESSION_COOKIE_SECURE")
    browser = settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    cache_key = repr((sorted(conf.items()), django, chosen, browser))
    found = _setups.get(cache_key)
    if found is None:
        found = SessionManager(open_store(conf["STORE"]), _config(conf)), _web_options(conf)
        _setups[cache_key] = found
    return found


def _config(conf: dict[str, Any]) -> Config:
    """Django's session settings as the defaults; ``COATCHECK["CONFIG"]`` wins."""
    own = dict(conf.get("CONFIG", {}))
    merged = {
        "cookie_name": settings.SESSION_COOKIE_NAME,
        "cookie_path": settings.SESSION_COOKIE_PATH,
        "cookie_domain": settings.SESSION_COOKIE_DOMAIN,
        "cookie_httponly": bool(settings.SESSION_COOKIE_HTTPONLY),
        "cookie_samesite": settings.SESSION_COOKIE_SAMESITE or None,
        "idle_timeout": float(settings.SESSION_COOKIE_AGE),
    }
    if settings.is_overridden("SESSION_COOKIE_SECURE"):
        # Django's default (False) is no choice of the user's: coatcheck's cookie stays Secure
        merged["cookie_secure"] = bool(settings.SESSION_COOKIE_SECURE)
    merged.update(own)
    if "cookie_lifetime" not in own:  # the cookie lives as long as the session, as in Django
        browser = settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
        merged["cookie_lifetime"] = 0 if browser else merged["idle_timeout"]
    config = Config(**merged)
    if config.cookie_partitioned:
        raise ConfigError("Django's cookie API cannot send Partitioned cookies")
    return config


def _web_options(conf: dict[str, Any]) -> WebOptions:
    web = dict(conf.get("WEB", {}))
    if conf.get("MIGRATE_FROM"):
        if "migrate" in web:
            raise ConfigError('set COATCHECK["MIGRATE_FROM"] or WEB["migrate"], not both')
        web["migrate"] = migrate_from(conf["MIGRATE_FROM"])
    return WebOptions(**web)


def migrate_from(engine: str) -> Callable[[str], dict[str, Any] | None]:
    """A ``WebOptions.migrate`` hook reading an old Django engine (``"...backends.db"``):
    the old session's data, which is then deleted; its own signature and expiry checks hold."""
    old_store = import_module(engine).SessionStore

    def migrate(cookie: str) -> dict[str, Any] | None:
        old = old_store(cookie)
        data = old.load()
        if not data:
            return None
        old.delete(cookie)
        return dict(data)

    return migrate


# --- the request scope: its client, and the sessions to close at its end ------------------


@dataclasses.dataclass
class _Request:
    client: Client
    stores: list[SessionStore]


_request: ContextVar[_Request | None] = ContextVar("coatcheck_django_request", default=None)


def _on_request_started(sender: Any, environ: Any = None, scope: Any = None, **_: Any) -> None:
    if not getattr(settings, "COATCHECK", None):
        return  # another engine: nothing to do
    client = Client()
    if environ is not None:
        client = environ_client(environ, web_options())
    elif scope is not None:
        client = scope_client(scope, scope_headers(scope), web_options())
    _request.set(_Request(client, []))


def _on_request_finished(sender: Any, **_: Any) -> None:
    current = _request.get()
    if current is not None:
        _request.set(None)
        for store in current.stores:
            store.close_unsaved()


def _on_user_logged_in(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    """Django's ``login()`` cycled the key already: mark the session with the user's primary
    key, so it enters the user's index (``user_sessions()``, ``logout_everywhere()``).
    ``logout()`` flushes the session, which takes it out of the index."""
    store = getattr(request, "session", None)
    if isinstance(store, SessionStore) and user is not None:
        store._writable().user = str(user.pk)


request_started.connect(_on_request_started, dispatch_uid="coatcheck.django.started")
request_finished.connect(_on_request_finished, dispatch_uid="coatcheck.django.finished")
user_logged_in.connect(_on_user_logged_in, dispatch_uid="coatcheck.django.logged_in")


# --- the engine -----------------------------------------------------------------------------


class _Data(MutableMapping[str, Any]):
    """``SessionBase._session``: the current session's data. Reads never reopen a saved
    session; the first change after ``save()`` does (see :meth:`SessionStore.save`)."""

    __slots__ = ("_store",)

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    def __getitem__(self, key: str) -> Any:
        return self._store._current().data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store._writable().data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._store._writable().data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._store._current().data)

    def __len__(self) -> int:
        return len(self._store._current().data)

    def __contains__(self, key: object) -> bool:
        return key in self._store._current().data

    def clear(self) -> None:
        self._store._writable().data.clear()


def _in_thread(name: str) -> Callable[..., Any]:
    """An async twin running the sync method in Django's sync thread (store calls block)."""

    async def method(self: SessionStore, *args: Any, **kwargs: Any) -> Any:
        return await sync_to_async(getattr(self, name))(*args, **kwargs)

    method.__name__ = "a" + name.strip("_")
    return method


class SessionStore(SessionBase):  # type: ignore[misc]  # Django ships no type hints
    """Django's ``SessionBase`` over one request's coatcheck session (PHP: ``$_SESSION``).

    ``session_key`` is the coatcheck id, which only goes into the cookie; ids the server
    did not issue are never adopted. The session is read (and, in ``exclusive`` mode,
    locked) on first use; ``save()`` is ``write_close()``, ``cycle_key()`` is
    ``regenerate_id()``, ``flush()`` is ``destroy()`` followed by a fresh session.
    """

    _rs: RequestSession  # this request's session now; made by ``_session_key = ...``

    def __init__(self, session_key: str | None = None, *, client: Client | None = None) -> None:
        self._manager, self.options = _setup()
        current = _request.get()
        self.client = client or (current.client if current is not None else Client())
        self._route: RouteOptions | None = None
        self._earlier: list[RequestSession] = []  # closed by save() or flush() in this request
        self._data = _Data(self)
        self._keyed = False  # a new session given its key by save() or cycle_key()
        self._loaded_expiry: Any = None
        self._interrupted = False  # reopened after save() and found gone
        super().__init__(session_key)  # sets _session_key, which makes self._rs
        if current is not None:
            current.stores.append(self)

    @property
    def config(self) -> Config:
        return self._manager.config

    @property
    def core(self) -> Session:
        """The full :class:`~coatcheck.Session` (``remember()``, ``touch()``, ...), read on
        first use. After ``save()`` it is closed; change the session through Django's API,
        which reopens it."""
        return self._current()

    # --- the coatcheck session ------------------------------------------------------------

    def _current(self) -> Session:
        """The session, read (and locked) on first use; an expiry date passed ends it."""
        rs = self._rs
        if rs.loaded:
            return rs.session
        s = rs.session
        if s.is_new:
            self._loaded_expiry = None
            if len(s):
                self.modified = True  # migrated (MIGRATE_FROM): Django's middleware saves it
            return s
        self._loaded_expiry = s.get(EXPIRY)
        left = self._seconds_left(s)
        if left is not None and left <= 0:  # set_expiry(datetime) is a deadline of its own
            self._end(s)
            return self._current()
        return s

    def _writable(self) -> Session:
        """The session to change: after ``save()`` it is read again and relocked first."""
        s = self._current()
        if s.closed and not s.read_only and not self._rs.response_started:
            self._replace(s.cookie_value)
            s = self._current()
            self._interrupted = s.is_new  # deleted meanwhile: save() raises UpdateError
        return s

    def _replace(self, cookie: str | None) -> None:
        if hasattr(self, "_rs") and self._rs.loaded:
            self._earlier.append(self._rs)
        self._rs = RequestSession(self._manager, self.options, cookie, self.client)
        if self._route is not None:
            self._rs.configure(self._route)
        self._keyed = False

    def _end(self, s: Session) -> None:
        """Delete the stored session (its cookie is expired); a fresh one continues."""
        s.destroy()
        self._replace(None)

    def _forget(self) -> None:
        """The session is gone: drop this request's changes, continue with a fresh one."""
        self._rs.abort()
        self._interrupted = False
        self._replace(None)

    def _destroy(self, key: str | None) -> None:
        if ids.is_well_formed(key, self.config.id_bytes):
            assert key is not None
            self._manager.store.destroy(ids.storage_key(key))

    def configure(self, route: RouteOptions) -> None:
        """This view's options (``session_options``); before the session is first used."""
        self._rs.configure(route)
        self._route = route

    def abort(self) -> None:
        """Release the lock without writing (a failed request)."""
        self._rs.abort()

    def close_unsaved(self) -> None:
        """End of a request Django's own middleware ran: release what it did not save.

        A modified session it did not save was refused (a 5xx): its changes are dropped.
        """
        rs = self._rs
        if not rs.loaded or rs.session.closed:
            return
        if self.modified:
            rs.abort()
            return
        try:
            rs.session.write_close()  # unlock, and extend the idle deadline
        except CoatcheckError:
            log.warning("could not close a session; its lock lease will expire", exc_info=True)

    def finish(self, status: int) -> tuple[CookieAction | None, Headers]:
        """End the request (coatcheck's middleware): the lifecycle saves, or aborts for a
        failed response. Returns the cookie to set and the headers to merge (Vary,
        Cache-Control). UpdateError when the session was deleted by another request."""
        try:
            if self.options.saves(status):
                self._prepare_finish()
            self._rs.finish(status)
        except (LockLost, SessionGone) as e:
            self._forget()
            raise UpdateError(GONE) from e
        written = self._rs.session.cookie() if self._rs.loaded else None
        self._keyed = self._keyed or bool(written and written.value)  # as after Django's save()
        return self._reply()

    def _prepare_finish(self) -> None:
        """Django's rules, before the lifecycle writes: set_expiry(), SAVE_EVERY_REQUEST,
        and an emptied session kept (its key stays until flush(), as in Django)."""
        rs = self._rs
        every = settings.SESSION_SAVE_EVERY_REQUEST and rs.needs_load and not rs.route.skip
        if not (rs.loaded or every):
            return
        s = self._current()
        if self._interrupted:
            raise SessionGone(GONE)
        if s.closed or s.read_only or self._apply_expiry(s):
            return
        if every:
            s.touch()
        if not s.is_new and not len(s):
            s.write_close()

    def _reply(self) -> tuple[CookieAction | None, Headers]:
        """The headers of every session this request used, the cookie of the last one."""
        headers: dict[str, str] = {}
        action: CookieAction | None = None
        data: MutableMapping[str, Any] = {}
        for rs in (*self._earlier, self._rs):
            for name, value in rs.headers():
                if name.lower() != "set-cookie":
                    headers.setdefault(name, value)
            cookie = rs.session.cookie() if rs.loaded else None
            if cookie is not None:
                action, data = cookie, rs.session.data
        if action is not None and action.value is not None and self._browser_close(data):
            action = CookieAction(action.value, None)
        return action, list(headers.items())

    # --- expiry ---------------------------------------------------------------------------

    def _seconds_left(self, data: MutableMapping[str, Any]) -> int | None:
        """What set_expiry() left: None for the configured timeout (unset, or 0)."""
        expiry = data.get(EXPIRY)
        return None if not expiry else int(self.get_expiry_age(expiry=expiry))

    def _apply_expiry(self, s: Session) -> bool:
        """A changed set_expiry() as coatcheck timeouts; True when it ended the session.

        Seconds or a date become :meth:`~coatcheck.Session.remember` (the cookie's Max-Age
        follows); one in the past deletes the session now.
        """
        if s.get(EXPIRY) == self._loaded_expiry:
            return False
        self._loaded_expiry = s.get(EXPIRY)
        left = self._seconds_left(s)
        config = self.config
        if left is None:
            if s.remembered:  # back to the configured idle timeout
                s.remember(config.idle_timeout)
        elif left <= 0:
            self._end(s)
            return True
        else:
            s.remember(left, left if left > config.absolute_timeout else None)
        return False

    def _browser_close(self, data: MutableMapping[str, Any]) -> bool:
        expiry = data.get(EXPIRY)
        return bool(settings.SESSION_EXPIRE_AT_BROWSER_CLOSE) if expiry is None else expiry == 0

    def get_session_cookie_age(self) -> int:
        """The idle timeout coatcheck enforces (``SESSION_COOKIE_AGE`` unless CONFIG sets
        ``idle_timeout``), so ``get_expiry_age()`` and the cookie agree with the server."""
        return int(self.config.idle_timeout)

    # --- SessionBase ----------------------------------------------------------------------

    def _key(self) -> str | None:
        rs = self._rs
        if not rs.loaded:
            return rs.cookie if rs.names_stored_session else None
        s = rs.session
        return s.id if self._keyed or not s.is_new else None

    def _set_key(self, value: str | None) -> None:
        if hasattr(self, "_rs"):
            self._rs.abort()
        self._replace(value or None)

    session_key = property(_key)
    _session_key = property(_key, _set_key)

    def _get_session(self, no_load: bool = False) -> _Data:
        self._current()
        self.accessed = True
        return self._data

    _session = property(_get_session)

    async def _aget_session(self, no_load: bool = False) -> _Data:
        if not self._rs.loaded:
            await sync_to_async(self._current)()
        self.accessed = True
        return self._data

    aset = _in_thread("__setitem__")
    apop = _in_thread("pop")
    asetdefault = _in_thread("setdefault")
    aupdate = _in_thread("update")
    adelete_test_cookie = _in_thread("delete_test_cookie")
    aflush = _in_thread("flush")
    acycle_key = _in_thread("cycle_key")

    def is_empty(self) -> bool:
        return not self.session_key and not (self._rs.loaded and len(self._rs.session))

    def load(self) -> dict[str, Any]:
        """The data as stored: this request's unsaved changes are not in it (as in Django).

        The first call reads the session; later ones read the store again, without the lock.
        """
        if not self._rs.loaded:
            return dict(self._current().data)
        key = self.session_key
        if key is None:
            return {}
        stored = self._manager.start(key, client=self.client, read_only=True)
        return {} if stored.is_new else dict(stored.data)

    def exists(self, session_key: str | None) -> bool:
        if not ids.is_well_formed(session_key, self.config.id_bytes):
            return False
        assert session_key is not None
        return self._manager.store.validate_id(ids.storage_key(session_key))

    def create(self) -> None:
        """A new, empty session with a new key, stored at once (Django's contract)."""
        self._set_key(None)
        self.save()
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        """Persist now and unlock (PHP's session_write_close); the session stays readable.

        The next change reads it again and retakes the lock, and the middleware saves it
        at the end, as Django does. An empty new session is stored too, so its key is
        stable. UpdateError when the session was deleted meanwhile (a logout elsewhere).
        """
        s = self._current()
        if self._interrupted:
            self._forget()
            raise UpdateError(GONE)
        if s.closed or self._apply_expiry(s):
            return  # nothing changed since it was saved (or read-only), or it expired now
        if s.is_new and not len(s) and not s.remembered:
            # coatcheck stores an empty new session only for a header change
            s.remember(s.idle_timeout)
        try:
            s.write_close()
        except (LockLost, SessionGone) as e:
            self._forget()
            raise UpdateError(GONE) from e
        self._keyed = True

    def delete(self, session_key: str | None = None) -> None:
        """Delete a stored session: this one, or another by key (log out elsewhere)."""
        if session_key is not None and session_key != self.session_key:
            self._destroy(session_key)
        elif self._rs.loaded and not self._rs.session.closed:
            self._end(self._rs.session)
        else:
            self._destroy(self.session_key)

    def clear(self) -> None:
        self._writable().data.clear()
        self.accessed = self.modified = True

    def flush(self) -> None:
        """Logout: delete the stored session; a fresh, empty one continues (key None)."""
        self._end(self._current())  # a cookie the store never knew is expired too
        self._interrupted = False
        self.accessed = self.modified = True

    def cycle_key(self) -> None:
        """Login: a new id for the same data. The old id is deleted when the session is
        saved, together with the write (PHP's session_regenerate_id(true))."""
        self._writable().regenerate_id(delete_old=True)
        self._keyed = True
        self.accessed = self.modified = True

    @classmethod
    def clear_expired(cls) -> None:
        """``manage.py clearsessions``: the store's garbage collection (session_gc)."""
        manager().gc()
