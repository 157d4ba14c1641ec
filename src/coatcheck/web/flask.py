"""Flask integration: ``flask.session`` backed by a coatcheck store.

PHP equivalent: ``session_start()`` on first use of ``$_SESSION`` and
``session_write_close()`` when the response is ready. Set it up with::

    from coatcheck.web.flask import init_app
    init_app(app)          # reads COATCHECK_STORE and COATCHECK_* from app.config

``flask.session``, ``flask.flash()`` and ``get_flashed_messages()`` work unchanged. The
session is lazy: a request that never touches ``flask.session`` makes no store call and
sends no cookie. The first touch reads the session and (in ``exclusive`` mode) takes its
lock; the lock is released when the response is saved, or earlier by :func:`write_close`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from flask import Flask, Request, Response, request_tearing_down
from flask.globals import _cv_request, request, session
from flask.sessions import SessionInterface, SessionMixin
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from .. import Client, Config, Session, SessionManager, open_store
from ..config import LockMode
from ..cookies import session_cookie
from ..errors import CoatcheckError, ConfigError, LockTimeout, StoreUnavailable
from .common import WebOptions, environ_client, error_response, session_headers

F = TypeVar("F", bound=Callable[..., Any])
Migrate = Callable[[str], Mapping[str, Any] | None]

_FLASHES = "_flashes"
_VIEW_OPTIONS = "_coatcheck_session_options"


@dataclasses.dataclass(frozen=True, slots=True)
class ViewOptions:
    """How one view uses the session; set with :func:`session_options`."""

    read_only: bool = False
    lock_mode: LockMode | None = None


def session_options(
    *, read_only: bool = False, lock_mode: LockMode | None = None
) -> Callable[[F], F]:
    """Decorate a view: ``read_only=True`` reads without a lock and never writes
    (PHP's ``session_start(['read_and_close' => true])``); ``lock_mode`` overrides the
    configured mode for this view (e.g. ``"optimistic"`` for a chatty JSON endpoint).
    """
    options = ViewOptions(read_only, lock_mode)

    def mark(view: F) -> F:
        setattr(view, _VIEW_OPTIONS, options)
        return view

    return mark


def read_only(view: F) -> F:
    """Shorthand for ``@session_options(read_only=True)``."""
    return session_options(read_only=True)(view)


class FlaskSession(SessionMixin):
    """``flask.session``: a lazy view of one coatcheck :class:`~coatcheck.Session`.

    Nothing is read until the first key is touched. Flashed messages are kept as JSON
    lists (Flask flashes tuples and ``Markup``) and handed back as tuples and ``Markup``.
    """

    def __init__(self, interface: CoatcheckSessionInterface, cookie: str | None, client: Client):
        self._interface = interface
        self._cookie = cookie
        self._client = client
        self._session: Session | None = None
        self.modified = False
        self._accessed = False

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the store was read for this request."""
        return self._session is not None

    @property
    def core(self) -> Session:
        """The coatcheck session, loaded (and locked) on first use."""
        if self._session is None:
            self._session = self._interface.start(self._cookie, self._client)
        return self._session

    def write_close(self) -> None:
        """Persist now and release the lock; keep reading afterwards (session_write_close)."""
        self._interface.finish(self)

    def regenerate(self, delete_old: bool = True) -> None:
        """New id, same data: call on login (session_regenerate_id)."""
        self.core.regenerate_id(delete_old=delete_old)

    def destroy(self) -> None:
        """Delete the session from the store; the cookie is expired (session_destroy)."""
        self.core.destroy()

    # --- flags --------------------------------------------------------------------------

    @property
    def new(self) -> bool:  # type: ignore[override]
        return self.core.is_new

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

    @property
    def accessed(self) -> bool:
        return self._accessed

    @accessed.setter
    def accessed(self, value: bool) -> None:
        # Flask sets this on every use of the proxy; "started" is what costs a round trip.
        self._accessed = value

    @property
    def permanent(self) -> bool:
        """True when the session has its own timeouts, so its cookie outlives the browser."""
        return _remembered(self.core)

    @permanent.setter
    def permanent(self, value: bool) -> None:
        if value:
            self._interface.make_permanent(self.core)

    # --- mapping ------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        value = self.core[key]
        return _unflash(value) if key == _FLASHES else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.core[key] = _flash(value) if key == _FLASHES else value
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self.core[key]
        self.modified = True

    def __iter__(self) -> Iterator[str]:
        return iter(self.core)

    def __len__(self) -> int:
        return len(self.core)

    def __repr__(self) -> str:
        return f"<FlaskSession started={self.started}>"


class CoatcheckSessionInterface(SessionInterface):
    """A Flask ``SessionInterface`` over a :class:`~coatcheck.SessionManager`.

    ``manager_or_url`` is a manager or a store URL (then ``config`` applies). ``migrate``
    is called with the raw cookie value when the cookie names no coatcheck session; it may
    return the data of a session from the old store (e.g. Flask-Session's), which is then
    copied into a fresh coatcheck session under a new id.
    """

    def __init__(
        self,
        manager_or_url: SessionManager | str,
        config: Config | None = None,
        *,
        options: WebOptions | None = None,
        migrate: Migrate | None = None,
    ) -> None:
        if isinstance(manager_or_url, str):
            manager = SessionManager(open_store(manager_or_url), config or Config())
        elif config is not None:
            raise ConfigError("pass config with a store URL; a SessionManager has its own")
        else:
            manager = manager_or_url
        self.manager = manager
        self.options = options or WebOptions()
        self.migrate = migrate
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()

    # --- SessionInterface ---------------------------------------------------------------

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        """Called by Flask for every request: only notes the cookie, reads nothing."""
        if app not in self._apps:
            request_tearing_down.connect(self._teardown, app, weak=False)
            self._apps.add(app)
        cookie = session_cookie(request.headers.get("Cookie"), self.manager.config.cookie_name)
        return FlaskSession(self, cookie, _client(request, self.options))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Write (or touch, or release) the session and set the response headers."""
        if not isinstance(session, FlaskSession) or not session.started:
            return
        try:
            self.finish(session, response.status_code)
        except CoatcheckError as e:
            _become_error(response, e)
            return
        cookie = session.core.set_cookie_header()
        if cookie is not None:
            response.headers.add("Set-Cookie", cookie)
        for name, value in session_headers():
            if name.lower() == "vary":
                response.vary.add(value)
            elif name not in response.headers:
                response.headers[name] = value

    # --- coatcheck ----------------------------------------------------------------------

    def start(self, cookie: str | None, client: Client) -> Session:
        options = _view_options()
        try:
            core = self.manager.start(
                cookie, client=client, read_only=options.read_only, lock_mode=options.lock_mode
            )
        except StoreUnavailable as e:
            raise HTTPStoreUnavailable(str(e)) from e
        except LockTimeout as e:
            raise HTTPLockTimeout(str(e)) from e
        if self.migrate is not None and cookie and core.is_new and not core.is_expired:
            old = self.migrate(cookie)
            if old and not core.read_only:
                core.update(old)
        return core

    def finish(self, session: FlaskSession, status: int = 200) -> None:
        """Close the session for this request: abort on a 5xx, else persist."""
        core = session.core
        if core.closed:
            return
        if not self.options.saves(status):
            core.abort()  # the view failed: keep what was stored before it
        elif session.modified and len(core) == 0 and not core.is_new:
            core.destroy()  # emptied (``session.clear()`` on logout): as Flask-Session does
        else:
            core.write_close()

    def regenerate(self, session: SessionMixin) -> None:
        """New id for ``session``, same data: Flask-Session's ``regenerate`` (call on login)."""
        _coatcheck(session).regenerate()

    def make_permanent(self, core: Session) -> None:
        """``session.permanent = True``: PERMANENT_SESSION_LIFETIME becomes the idle timeout."""
        from flask import current_app

        lifetime = current_app.permanent_session_lifetime.total_seconds()
        core.remember(lifetime, max(lifetime, self.manager.config.absolute_timeout))

    def _teardown(self, sender: Flask, exc: BaseException | None = None, **_: Any) -> None:
        """Last resort, after every request: release a lock nobody saved (an error escaped)."""
        ctx = _cv_request.get(None)
        current = getattr(ctx, "_session", None)
        if isinstance(current, FlaskSession) and current.started and not current.core.closed:
            current.core.abort()


class _HTTPError(HTTPException):
    """Answers with coatcheck's status for the error (503 + Retry-After, 409)."""

    def get_response(self, *args: Any, **kwargs: Any) -> Response:
        assert isinstance(self, CoatcheckError)
        response = Response()
        _become_error(response, self)
        return response


class HTTPStoreUnavailable(StoreUnavailable, _HTTPError):
    """StoreUnavailable raised at ``flask.session`` first use; Flask answers 503."""

    code = 503


class HTTPLockTimeout(LockTimeout, _HTTPError):
    """LockTimeout raised at ``flask.session`` first use; Flask answers 503 + Retry-After."""

    code = 503


def _become_error(response: Response, exc: CoatcheckError) -> None:
    status, headers, body = error_response(exc)
    response.status_code = status
    response.set_data(body)
    for name, value in headers:
        response.headers[name] = value


# --- set-up -------------------------------------------------------------------------------

_OWN_KEYS = {"COATCHECK_STORE", "COATCHECK_CONFIG"}


def config_from(settings: Mapping[str, Any]) -> Config:
    """A Config from ``COATCHECK_CONFIG`` (a dict) and ``COATCHECK_<OPTION>`` keys.

    ``COATCHECK_IDLE_TIMEOUT = 1800`` sets ``Config.idle_timeout``; unknown ``COATCHECK_*``
    keys are an error, so a typo does not silently keep a default.
    """
    values: dict[str, Any] = dict(settings.get("COATCHECK_CONFIG") or {})
    fields = {f.name for f in dataclasses.fields(Config)}
    options = {f.name for f in dataclasses.fields(WebOptions)}
    for key, value in settings.items():
        if not key.startswith("COATCHECK_") or key in _OWN_KEYS:
            continue
        name = key.removeprefix("COATCHECK_").lower()
        if name in fields:
            values[name] = tuple(value) if name == "fingerprint" else value
        elif name not in options:
            raise ConfigError(f"unknown setting {key}")
    return Config(**values)


def options_from(settings: Mapping[str, Any]) -> WebOptions:
    """WebOptions from ``COATCHECK_<OPTION>`` keys (e.g. ``COATCHECK_TRUSTED_PROXIES``)."""
    values = {}
    for f in dataclasses.fields(WebOptions):
        key = "COATCHECK_" + f.name.upper()
        if key in settings:
            values[f.name] = settings[key]
    return WebOptions(**values)


def init_app(app: Flask, *, migrate: Migrate | None = None) -> CoatcheckSessionInterface:
    """Install coatcheck as ``app.session_interface`` from ``app.config``.

    Requires ``COATCHECK_STORE`` (a store URL such as ``sqlite:///sessions.db``).
    """
    url = app.config.get("COATCHECK_STORE")
    if not url:
        raise ConfigError("set COATCHECK_STORE to a store URL, e.g. 'sqlite:///sessions.db'")
    interface = CoatcheckSessionInterface(
        url, config_from(app.config), options=options_from(app.config), migrate=migrate
    )
    app.session_interface = interface
    app.extensions["coatcheck"] = interface
    return interface


# --- in views -----------------------------------------------------------------------------


def current_session() -> FlaskSession:
    """``flask.session``, typed as the coatcheck session it is."""
    return _coatcheck(session)


def write_close() -> None:
    """Persist the session now and release its lock (session_write_close)."""
    current_session().write_close()


def regenerate(delete_old: bool = True) -> None:
    """New id, same data: call right after login (session_regenerate_id)."""
    current_session().regenerate(delete_old)


def destroy() -> None:
    """Delete the session and expire its cookie: call on logout (session_destroy)."""
    current_session().destroy()


def _coatcheck(s: SessionMixin) -> FlaskSession:
    target = s._get_current_object() if hasattr(s, "_get_current_object") else s
    if not isinstance(target, FlaskSession):
        raise RuntimeError("flask.session is not a coatcheck session; call init_app(app)")
    return target


def _view_options() -> ViewOptions:
    from flask import current_app

    view = current_app.view_functions.get(request.endpoint or "")
    options = getattr(view, _VIEW_OPTIONS, None)
    return options if isinstance(options, ViewOptions) else ViewOptions()


def _client(req: Request, options: WebOptions) -> Client:
    return environ_client(req.environ, options)


def _remembered(core: Session) -> bool:
    # remember() stores per-session timeouts in the record header; no public getter yet.
    return core._core.state.header.idle is not None


# --- flashed messages ---------------------------------------------------------------------
# Flask flashes (category, message) tuples, and messages may be Markup. JSON keeps lists
# and strings, so an entry is stored as [category, message] or [category, message, "html"]
# and given back as a tuple, with Markup restored.


def _flash(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    out = []
    for entry in value:
        if isinstance(entry, tuple | list) and len(entry) == 2:
            category, message = entry
            if isinstance(message, Markup):
                out.append([category, str(message), "html"])
            else:
                out.append([category, message])
        else:
            out.append(entry)
    return out


def _unflash(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for entry in value:
        if isinstance(entry, list) and len(entry) == 3 and entry[2] == "html":
            # it was Markup when flashed; the store is server-side, so it is as safe as then
            out.append((entry[0], Markup(entry[1])))  # noqa: S704
        elif isinstance(entry, list) and len(entry) == 2:
            out.append((entry[0], entry[1]))
        else:
            out.append(entry)
    return out
