"""The Django session engine: ``SESSION_ENGINE = "coatcheck.django"``.

``request.session`` is a :class:`SessionStore`, a Django ``SessionBase`` whose data lives in
a coatcheck session: read (and, in ``exclusive`` mode, locked) on first use, written and
unlocked by ``save()``. Settings live in one dict::

    COATCHECK = {"STORE": "sqlite:///sessions.db", "CONFIG": {"lock_mode": "exclusive"}}

Django's ``SESSION_COOKIE_*`` settings still shape the cookie (Django's middleware sets it);
``SESSION_COOKIE_AGE`` is the default idle and absolute timeout.
"""

from __future__ import annotations

import dataclasses
from contextvars import ContextVar
from datetime import datetime
from importlib import import_module
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings  # type: ignore[import-untyped]
from django.contrib.sessions.backends.base import SessionBase  # type: ignore[import-untyped]
from django.core.signals import request_finished, request_started  # type: ignore[import-untyped]

from .. import Client, Config, Session, SessionManager, ids, open_store
from ..config import LockMode
from ..errors import ConfigError
from .common import WebOptions, environ_client, scope_client, scope_headers

_managers: dict[str, tuple[SessionManager, WebOptions]] = {}


def _settings() -> dict[str, Any]:
    conf = getattr(settings, "COATCHECK", None)
    if not isinstance(conf, dict) or not conf.get("STORE"):
        raise ConfigError('set COATCHECK = {"STORE": "<store url>"} in the Django settings')
    return conf


def manager() -> SessionManager:
    """The SessionManager for the current ``settings.COATCHECK`` (one per distinct value)."""
    return _manager_and_options()[0]


def web_options() -> WebOptions:
    return _manager_and_options()[1]


def _manager_and_options() -> tuple[SessionManager, WebOptions]:
    conf = _settings()
    cache_key = repr(sorted(conf.items())) + repr(_django_defaults())
    found = _managers.get(cache_key)
    if found is None:
        config = Config(**{**_django_defaults(), **conf.get("CONFIG", {})})
        options = WebOptions(**conf.get("WEB", {}))
        found = (SessionManager(open_store(conf["STORE"]), config), options)
        _managers[cache_key] = found
    return found


def _django_defaults() -> dict[str, Any]:
    """Config defaults taken from Django's own session settings."""
    age = float(settings.SESSION_COOKIE_AGE)
    samesite = settings.SESSION_COOKIE_SAMESITE
    return {
        "cookie_name": settings.SESSION_COOKIE_NAME,
        "cookie_path": settings.SESSION_COOKIE_PATH,
        "cookie_domain": settings.SESSION_COOKIE_DOMAIN,
        "cookie_secure": bool(settings.SESSION_COOKIE_SECURE),
        "cookie_httponly": bool(settings.SESSION_COOKIE_HTTPONLY),
        "cookie_samesite": samesite if samesite in ("Lax", "Strict", "None") else None,
        "idle_timeout": age,
        "absolute_timeout": age,
    }


# --- the request scope: which client, which sessions to close at the end ------------------


@dataclasses.dataclass
class _Scope:
    client: Client
    sessions: list[SessionStore]


_scope: ContextVar[_Scope | None] = ContextVar("coatcheck_django_request", default=None)


def _on_request_started(sender: Any, environ: Any = None, scope: Any = None, **_: Any) -> None:
    client = Client()
    if environ is not None:
        client = environ_client(environ, _options_or_default())
    elif scope is not None:
        client = scope_client(scope, scope_headers(scope), _options_or_default())
    _scope.set(_Scope(client, []))


def _on_request_finished(sender: Any, **_: Any) -> None:
    """Close sessions Django's middleware did not save, so no lock outlives the request."""
    current = _scope.get()
    if current is None:
        return
    _scope.set(None)
    for store in current.sessions:
        store.close_unsaved()


def _options_or_default() -> WebOptions:
    # request_started fires for every request, even before COATCHECK is checked by a session
    return web_options() if getattr(settings, "COATCHECK", None) else WebOptions()


request_started.connect(_on_request_started, dispatch_uid="coatcheck.django.started")
request_finished.connect(_on_request_finished, dispatch_uid="coatcheck.django.finished")


# --- the engine ---------------------------------------------------------------------------


class SessionStore(SessionBase):  # type: ignore[misc]  # Django ships no type hints
    """Django's ``SessionBase`` over a coatcheck session (PHP: ``$_SESSION`` + handler).

    ``session_key`` is the coatcheck id (it goes only into the cookie); ids the server did
    not issue are never adopted. ``cycle_key()`` is ``regenerate_id()``, ``flush()`` is
    ``destroy()`` followed by a fresh session, ``save()`` is ``write_close()``.
    """

    def __init__(self, session_key: str | None = None) -> None:
        self._cc: Session | None = None
        self._cookie = session_key  # as sent, for MIGRATE_FROM; session_key is validated
        self.read_only = False
        self.lock_mode: LockMode | None = None
        self.client: Client | None = None
        super().__init__(session_key)

    # --- the coatcheck session ------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the store was read for this request."""
        return self._cc is not None

    @property
    def core(self) -> Session:
        """The coatcheck session, read (and locked) on first use."""
        if self._cc is None:
            self._cc = self._start(self.session_key)
            if self._cc.is_new:
                self._migrate()
            self._session_key = None if self._cc.is_new else self._cc.id
        return self._cc

    def _start(self, cookie: str | None) -> Session:
        scope = _scope.get()
        client = self.client or (scope.client if scope is not None else Client())
        core = manager().start(
            cookie, client=client, read_only=self.read_only, lock_mode=self.lock_mode
        )
        if scope is not None and not core.closed:
            scope.sessions.append(self)
        return core

    def _migrate(self) -> None:
        """Copy a session from ``COATCHECK["MIGRATE_FROM"]`` (an old engine) on first visit."""
        old_engine = _settings().get("MIGRATE_FROM")
        key = self._cookie
        if not old_engine or not key or self._cc is None or self._cc.read_only:
            return
        old = import_module(old_engine).SessionStore(key)
        data = old.load()
        if data:
            self._cc.update(data)
            old.delete(key)
            self.modified = True

    def close_unsaved(self) -> None:
        """End of request: release the lock (and touch) if ``save()`` was never called.

        A modified session that was not saved was refused by the middleware (a 5xx or an
        emptied session), so its changes are dropped.
        """
        if self._cc is None or self._cc.closed:
            return
        if self.modified:
            self._cc.abort()
        else:
            self._cc.write_close()

    def abandon(self) -> None:
        """Drop this request's changes and release the lock (a failed response)."""
        if self._cc is not None and not self._cc.closed:
            self._cc.abort()

    # --- SessionBase ----------------------------------------------------------------------

    def _validate_session_key(self, key: str | None) -> bool:
        return ids.is_well_formed(key, manager().config.id_bytes)

    def _get_session(self, no_load: bool = False) -> Session:
        self.accessed = True
        return self.core

    _session = property(_get_session)

    async def _aget_session(self, no_load: bool = False) -> Session:
        return await sync_to_async(self._get_session)(no_load)

    def is_empty(self) -> bool:
        return not self.session_key and (self._cc is None or len(self._cc) == 0)

    def load(self) -> dict[str, Any]:
        return dict(self.core)

    def exists(self, session_key: str | None) -> bool:
        if not ids.is_well_formed(session_key, manager().config.id_bytes):
            return False
        assert session_key is not None
        return manager().store.validate_id(ids.storage_key(session_key))

    def create(self) -> None:
        """A fresh, empty session with a new id; stored once it holds data (as in PHP)."""
        self.abandon()
        self._cc = self._start(None)
        self._session_key = self._cc.id
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        """Write and unlock (session_write_close); later changes raise SessionClosed."""
        core = self.core
        if core.is_new and not core.closed and len(core) == 0:
            # Nothing to store yet (PHP stores no empty new session). Stay open, so that a
            # later login() can still cycle the key, as django.test.Client.login() does.
            self._session_key = core.id
            return
        if not core.closed:
            self._apply_expiry(core)
            core.write_close()
        self._session_key = core.id if (len(core) or not core.is_new) else None

    def delete(self, session_key: str | None = None) -> None:
        if session_key is not None and session_key != self.session_key:
            if ids.is_well_formed(session_key, manager().config.id_bytes):
                manager().store.destroy(ids.storage_key(session_key))
            return
        if self._cc is not None and not self._cc.closed:
            self._cc.destroy(restart=True)
        elif self._cc is not None:
            manager().store.destroy(ids.storage_key(self._cc.id))
        elif self.session_key:
            manager().store.destroy(ids.storage_key(self.session_key))
        self._session_key = None

    def clear(self) -> None:
        self.core.clear()
        self.accessed = True
        self.modified = True

    def flush(self) -> None:
        """Logout: destroy the stored session, continue with a fresh empty one."""
        self.delete()
        if self._cc is None or self._cc.closed:
            self._cc = self._start(None)
        self._session_key = None
        self.accessed = True
        self.modified = True

    async def aflush(self) -> None:
        await sync_to_async(self.flush)()

    def cycle_key(self) -> None:
        """Login: a new id for the same data; the old id is destroyed (regenerate_id)."""
        core = self.core
        core.regenerate_id(delete_old=True)
        self._session_key = core.id
        self.modified = True

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    @classmethod
    def clear_expired(cls) -> None:
        """``manage.py clearsessions``: the store's garbage collection (session_gc)."""
        manager().gc()

    # --- expiry ---------------------------------------------------------------------------

    def _apply_expiry(self, core: Session) -> None:
        """``set_expiry(seconds | datetime)`` becomes per-session timeouts ("remember me")."""
        if core.read_only:
            return
        expiry = core.get("_session_expiry")
        seconds: float | None = None
        if isinstance(expiry, int | float) and not isinstance(expiry, bool) and expiry > 0:
            seconds = float(expiry)
        elif isinstance(expiry, str):
            try:
                seconds = self.get_expiry_age(expiry=datetime.fromisoformat(expiry))
            except (ValueError, TypeError):  # unparsable, or naive vs aware
                seconds = None
        if seconds is None or seconds <= 0:
            return
        if core._core.state.header.idle != seconds:  # no public getter for the header yet
            core.remember(seconds, max(seconds, manager().config.absolute_timeout))
