"""Flask integration: ``flask.session`` backed by a coatcheck store.

PHP equivalent: ``session_start()`` on first use of ``$_SESSION`` and
``session_write_close()`` when the response is ready. Set it up with::

    from coatcheck.web.flask import init_app
    init_app(app)          # reads COATCHECK_STORE and COATCHECK_* from app.config

``flask.session``, ``flash()`` and ``get_flashed_messages()`` work unchanged, and so do
Flask-Session's ``session.sid`` and ``app.session_interface.regenerate(session)``. The
request lifecycle is :class:`coatcheck.web._sync.RequestSession`'s; this module only
translates Flask's request and response. Flask's and Flask-Session's ``SESSION_*`` keys are
mapped to :class:`~coatcheck.Config` options or refused with what to set instead.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar, cast

from .common import require

require("flask", "flask")

from flask import (  # noqa: E402
    Flask,
    Request,
    Response,
    current_app,
    has_request_context,
    request_tearing_down,
)
from flask import request as current_request  # noqa: E402
from flask import session as current_flask_session  # noqa: E402
from flask import sessions as flask_sessions  # noqa: E402
from markupsafe import Markup  # noqa: E402
from werkzeug.exceptions import HTTPException  # noqa: E402

from .. import Config, Session, SessionManager, Store, open_store  # noqa: E402
from ..config import LockMode  # noqa: E402
from ..errors import (  # noqa: E402
    CoatcheckError,
    ConfigError,
    Conflict,
    LockTimeout,
    RetryLater,
    StoreUnavailable,
)
from ._sync import RequestSession  # noqa: E402
from .common import (  # noqa: E402
    ANSWERED,
    ErrorReply,
    RouteOptions,
    WebOptions,
    environ_client,
    mark_route,
    merge_headers,
    request_cookie,
    route_options,
)

__all__ = [
    "FlaskSession",
    "SessionInterface",
    "config_from",
    "current_session",
    "destroy",
    "init_app",
    "options_from",
    "read_only",
    "regenerate",
    "session_options",
    "write_close",
]

F = TypeVar("F", bound=Callable[..., Any])

_FLASHES = "_flashes"


def session_options(
    *, read_only: bool = False, lock_mode: LockMode | None = None, skip: bool = False
) -> Callable[[F], F]:
    """Decorate a view (below ``@app.route``): ``read_only=True`` reads without a lock and
    never writes (PHP's ``read_and_close``); ``lock_mode`` overrides the configured mode
    for this view; ``skip=True``: no session at all (touching it raises SessionNotLoaded).
    """
    options = RouteOptions(read_only=read_only, lock_mode=lock_mode, skip=skip)

    def mark(view: F) -> F:
        return cast(F, mark_route(view, options))

    return mark


def read_only(view: F) -> F:
    """Shorthand for ``@session_options(read_only=True)``."""
    return session_options(read_only=True)(view)


class FlaskSession(RequestSession, flask_sessions.SessionMixin):
    """``flask.session``: one request's :class:`RequestSession`, as Flask expects it.

    Nothing is read until the first key is touched, with the view's
    :func:`session_options`. Flashed messages are kept as JSON lists (Flask flashes tuples
    and ``Markup``) and handed back as tuples and ``Markup``.
    """

    _routed = False

    @property
    def session(self) -> Session:
        """The coatcheck session, loaded (and locked) on first use."""
        with self._answered():
            self._use_route()
            return super().session

    def load(self, *, read_only: bool | None = None, lock_mode: LockMode | None = None) -> Session:
        with self._answered():
            self._use_route()
            return super().load(read_only=read_only, lock_mode=lock_mode)

    # --- Flask and Flask-Session attributes ---------------------------------------------

    @property
    def sid(self) -> str:
        """The session id, as Flask-Session names it; for the cookie only, never log it."""
        return self.session.id

    @property
    def new(self) -> bool:  # type: ignore[override]
        """True when this request started a new session (no usable one was presented)."""
        return self.session.is_new

    @property
    def permanent(self) -> bool:
        """True when the cookie outlives the browser (it has a Max-Age)."""
        return self.session.cookie_max_age is not None

    @permanent.setter
    def permanent(self, value: bool) -> None:
        # Permanent: PERMANENT_SESSION_LIFETIME is both the idle timeout the server enforces
        # and the cookie's Max-Age, as remember() makes them.
        s = self.session
        if value:
            lifetime = current_app.permanent_session_lifetime.total_seconds()
            # cookie_max_age counts down to the absolute cap: compare the lifetime asked for
            configured = int(self.manager.config.cookie_lifetime)
            if (
                s.cookie_max_age is None
                or s.idle_timeout != lifetime
                or (not s.remembered and configured != int(lifetime))
            ):
                s.remember(lifetime, max(lifetime, self.manager.config.absolute_timeout))
        elif s.cookie_max_age is not None:
            s.forget()  # a browser-session cookie, the configured idle timeout on the server

    # --- mapping, with flashed messages -------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        return _unflash(value) if key == _FLASHES else value

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _flash(value) if key == _FLASHES else value)

    # --- helpers ------------------------------------------------------------------------

    def _use_route(self) -> None:
        """Apply the view's :func:`session_options`, once, before the first load."""
        if self._routed or self.loaded or not has_request_context():
            return
        self._routed = True
        view = current_app.view_functions.get(current_request.endpoint or "")
        options = route_options(view)
        if options is not None:
            self.configure(options)

    @contextmanager
    def _answered(self) -> Iterator[None]:
        """Store down, lock busy: raise an HTTPException that answers as on_error says."""
        try:
            yield
        except ANSWERED as e:
            if isinstance(e, HTTPException):
                raise
            raise _http_error(e, self.options.on_error(e)) from e


class SessionInterface(flask_sessions.SessionInterface):
    """Flask's ``session_interface`` over coatcheck.

    ``store``: a :class:`~coatcheck.SessionManager`, a :class:`~coatcheck.Store`, or a store
    URL (with a Store or a URL, ``config`` applies). ``options``: the
    :class:`~coatcheck.web.common.WebOptions` every adapter takes.
    """

    def __init__(
        self,
        store: SessionManager | Store | str,
        config: Config | None = None,
        *,
        options: WebOptions | None = None,
    ) -> None:
        if isinstance(store, SessionManager):
            if config is not None:
                raise ConfigError("pass config with a Store or a URL; a SessionManager has its own")
            self.manager = store
        else:
            self.manager = SessionManager(
                open_store(store) if isinstance(store, str) else store, config
            )
        self.options = options or WebOptions()
        self._apps: weakref.WeakSet[Flask] = weakref.WeakSet()

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        """Called by Flask for every request: only notes the cookie, reads nothing."""
        if app not in self._apps:  # Flask has no hook at set-up time: connect on first use
            request_tearing_down.connect(self._teardown, app, weak=False)
            self._apps.add(app)
        client = environ_client(request.environ, self.options)
        name = self.manager.config.cookie_name
        cookie = request_cookie(request.headers.get("Cookie"), name, client)
        return FlaskSession(self.manager, self.options, cookie, client)

    def save_session(
        self, app: Flask, session: flask_sessions.SessionMixin, response: Response
    ) -> None:
        """Save the session (abort it for a 5xx) and add its headers to the response."""
        if not isinstance(session, FlaskSession) or session.failure is not None:
            return  # a failed load already answered, with an HTTPException
        try:
            ours = session.finish(response.status_code)
        except ANSWERED as e:
            session.abort()
            _replace(response, self.options.on_error(e))
            return
        if ours:
            merged = merge_headers(response.headers.to_wsgi_list(), ours)
            response.headers.clear()
            response.headers.extend(merged)

    def regenerate(
        self,
        session: flask_sessions.SessionMixin,
        delete_old: bool = True,
        grace: float | None = None,
    ) -> None:
        """New id for ``session``, same data: Flask-Session's ``regenerate`` (call on login)."""
        _ours(session).regenerate(delete_old, grace)

    def _teardown(self, sender: Flask, exc: BaseException | None = None, **_: Any) -> None:
        """After every request: release a lock nobody saved (an exception escaped)."""
        if isinstance(current_flask_session, FlaskSession):
            current_flask_session.abort()


# --- errors at first use --------------------------------------------------------------------


class SessionHTTPError(HTTPException):
    """A session error raised at ``flask.session``'s first use, answered with
    :attr:`WebOptions.on_error`'s reply (503 + Retry-After, 409).

    The subclasses are also the coatcheck error, so ``@app.errorhandler(LockTimeout)``
    still catches them.
    """

    reply: ErrorReply = (500, [], b"")

    def get_response(self, *args: Any, **kwargs: Any) -> Response:
        status, headers, body = self.reply
        return Response(body, status, headers)


class HTTPStoreUnavailable(StoreUnavailable, SessionHTTPError):
    code = 503


class HTTPLockTimeout(LockTimeout, SessionHTTPError):
    code = 503


class HTTPRetryLater(RetryLater, SessionHTTPError):
    code = 503


class HTTPConflict(Conflict, SessionHTTPError):
    code = 409


_HTTP_ERRORS: tuple[tuple[type[CoatcheckError], type[SessionHTTPError]], ...] = (
    (StoreUnavailable, HTTPStoreUnavailable),
    (LockTimeout, HTTPLockTimeout),
    (RetryLater, HTTPRetryLater),
    (Conflict, HTTPConflict),
)


def _http_error(exc: CoatcheckError, reply: ErrorReply) -> SessionHTTPError:
    cls = next(http for kind, http in _HTTP_ERRORS if isinstance(exc, kind))
    error = cls(str(exc))
    error.reply = reply
    error.code = reply[0]
    return error


def _replace(response: Response, reply: ErrorReply) -> None:
    status, headers, body = reply
    response.status_code = status
    response.headers.clear()
    response.headers.extend(headers)
    response.set_data(body)


# --- set-up ---------------------------------------------------------------------------------

_OWN_KEYS = {"COATCHECK_STORE", "COATCHECK_CONFIG"}
_FLASK = Flask.default_config  # every app.config starts with these values
_COOKIE_KEYS = {
    "SESSION_COOKIE_NAME": "cookie_name",
    "SESSION_COOKIE_DOMAIN": "cookie_domain",
    "SESSION_COOKIE_PATH": "cookie_path",
    "SESSION_COOKIE_HTTPONLY": "cookie_httponly",
    "SESSION_COOKIE_SECURE": "cookie_secure",
    "SESSION_COOKIE_SAMESITE": "cookie_samesite",
    "SESSION_COOKIE_PARTITIONED": "cookie_partitioned",
}
_ANY = object()  # refused whatever its value
_NO_STORE = (
    "COATCHECK_STORE = a store URL: 'redis://…', 'postgresql://…', 'sqlite:///…' "
    "(coatcheck has no such store; docs/custom-store.md writes one)"
)
_SQL_STORE = "COATCHECK_STORE = 'postgresql://…', 'mysql://…' or 'sqlite:///sessions.db'"
# Flask-Session's keys coatcheck does not take: the value that asks for nothing (its
# default), and what to set instead.
_REFUSED: dict[str, tuple[object, str]] = {
    "SESSION_USE_SIGNER": (False, "remove it: ids are 256 random bits, stored only hashed"),
    "SESSION_KEY_PREFIX": ("session:", "the store URL's option: ?prefix=… (Redis, Memcached)"),
    "SESSION_SERIALIZATION_FORMAT": ("json", "remove it: coatcheck stores JSON only"),
    "SESSION_REDIS": (None, "COATCHECK_STORE = 'redis://host:6379/0'"),
    "SESSION_MEMCACHED": (None, "COATCHECK_STORE = 'memcached://host:11211'"),
    "SESSION_CACHELIB": (None, _NO_STORE),
    "SESSION_FILE_DIR": (_ANY, "COATCHECK_STORE = 'file:///that/directory'"),
    "SESSION_FILE_THRESHOLD": (500, "remove it: expired sessions are removed by gc instead"),
    "SESSION_FILE_MODE": (0o600, "the file store URL's option: file:///dir?mode=640"),
    "SESSION_MONGODB": (None, _NO_STORE),
    "SESSION_MONGODB_DB": ("flask_session", _NO_STORE),
    "SESSION_MONGODB_COLLECT": ("sessions", _NO_STORE),
    "SESSION_SQLALCHEMY": (None, _SQL_STORE),
    "SESSION_SQLALCHEMY_TABLE": ("sessions", "the SQL store URL's option: ?table=…"),
    "SESSION_SQLALCHEMY_SEQUENCE": (None, "remove it: coatcheck's tables need no sequence"),
    "SESSION_SQLALCHEMY_SCHEMA": (None, "a table in the URL's database: ?table=…"),
    "SESSION_SQLALCHEMY_BIND_KEY": (None, _SQL_STORE + ", naming that database"),
    "SESSION_SQLALCHEMY_ENGINE": (None, _SQL_STORE),
    "SESSION_DYNAMODB": (None, _NO_STORE),
    "SESSION_DYNAMODB_TABLE": ("Sessions", _NO_STORE),
    "SESSION_DYNAMODB_TABLE_EXISTS": (False, _NO_STORE),
    "SESSION_POSTGRESQL": (None, "COATCHECK_STORE = 'postgresql://…'"),
    "SESSION_POSTGRESQL_TABLE": ("flask_sessions", "the URL's option: postgresql://…?table=…"),
    "SESSION_POSTGRESQL_SCHEMA": ("public", "the URL's option: postgresql://…?table=…"),
    "SESSION_REFRESH_EACH_REQUEST": (
        True,
        "remove it: a persistent cookie is re-sent whenever the idle deadline moves "
        "(at most once per COATCHECK_TOUCH_THRESHOLD), so cookie and server expire together",
    ),
}
_SESSION_TYPES = {
    "redis": "COATCHECK_STORE = 'redis://host:6379/0'",
    "memcached": "COATCHECK_STORE = 'memcached://host:11211'",
    "filesystem": "COATCHECK_STORE = 'file:///path/to/dir' or 'sqlite:///sessions.db'",
    "sqlalchemy": _SQL_STORE,
}


def _refuse(settings: Mapping[str, Any]) -> None:
    """Refuse the Flask-Session keys coatcheck cannot honour, saying what to set instead."""
    kind = settings.get("SESSION_TYPE")
    if kind is not None:
        instead = _SESSION_TYPES.get(str(kind).lower(), _NO_STORE)
        raise ConfigError(f"SESSION_TYPE is Flask-Session's; set {instead} and remove it")
    for key, (harmless, instead) in _REFUSED.items():
        if key in settings and not _same(settings[key], harmless):
            raise ConfigError(f"{key} is Flask-Session's and not used by coatcheck; {instead}")


def config_from(settings: Mapping[str, Any]) -> Config:
    """A Config from ``app.config``: Flask's and Flask-Session's keys, then
    ``COATCHECK_CONFIG`` (a dict), then ``COATCHECK_<OPTION>`` keys; later ones win.

    ``COATCHECK_IDLE_TIMEOUT = 1800`` sets ``Config.idle_timeout``; unknown ``COATCHECK_*``
    keys are an error, so a typo does not silently keep a default.
    """
    _refuse(settings)
    explicit: dict[str, Any] = dict(settings.get("COATCHECK_CONFIG") or {})
    fields = {f.name for f in dataclasses.fields(Config)}
    web = {f.name for f in dataclasses.fields(WebOptions)}
    for key, value in settings.items():
        if not key.startswith("COATCHECK_") or key in _OWN_KEYS:
            continue
        name = key.removeprefix("COATCHECK_").lower()
        if name in fields:
            explicit[name] = tuple(value) if name == "fingerprint" else value
        elif name not in web:
            raise ConfigError(f"unknown setting {key}")
    config = Config(**{**_mapped(settings), **explicit})
    if settings.get("SESSION_PERMANENT", True) and "cookie_lifetime" not in explicit:
        # every session is permanent: its cookie lasts as long as the server keeps it idle
        config = dataclasses.replace(config, cookie_lifetime=config.idle_timeout)
    return config


def options_from(settings: Mapping[str, Any]) -> WebOptions:
    """WebOptions from ``COATCHECK_<OPTION>`` keys (e.g. ``COATCHECK_TRUSTED_PROXIES``)."""
    values = {}
    for f in dataclasses.fields(WebOptions):
        key = "COATCHECK_" + f.name.upper()
        if key in settings:
            values[f.name] = settings[key]
    return WebOptions(**values)


def init_app(
    app: Flask,
    store: SessionManager | Store | str | None = None,
    config: Config | None = None,
    *,
    options: WebOptions | None = None,
) -> SessionInterface:
    """Install coatcheck as ``app.session_interface``; what is not given comes from
    ``app.config``: ``COATCHECK_STORE`` (a store URL such as ``sqlite:///sessions.db``),
    :func:`config_from` and :func:`options_from`.
    """
    settings = app.config
    _refuse(settings)  # first: a SESSION_TYPE says more than a missing COATCHECK_STORE
    store = store if store is not None else settings.get("COATCHECK_STORE")
    if not store:
        raise ConfigError("set COATCHECK_STORE to a store URL, e.g. 'sqlite:///sessions.db'")
    if config is None and not isinstance(store, SessionManager):
        config = config_from(settings)
    interface = SessionInterface(store, config, options=options or options_from(settings))
    app.session_interface = interface
    app.extensions["coatcheck"] = interface
    return interface


def _mapped(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Config values asked for by Flask's and Flask-Session's keys.

    A Flask key left at Flask's default asks for nothing: Flask's ``SESSION_COOKIE_SECURE =
    False`` or ``SAMESITE = None`` must not weaken coatcheck's cookie, nor its 31-day
    ``PERMANENT_SESSION_LIFETIME`` become every session's idle timeout.
    """
    out: dict[str, Any] = {}
    for key, option in _COOKIE_KEYS.items():
        value = settings.get(key, _FLASK.get(key))
        if value != _FLASK.get(key) and value not in (None, ""):
            out[option] = value
    default = _FLASK["PERMANENT_SESSION_LIFETIME"]
    lifetime = _seconds(settings.get("PERMANENT_SESSION_LIFETIME", default))
    if settings.get("SESSION_PERMANENT", True) and lifetime != _seconds(default):
        out["idle_timeout"] = lifetime  # every session is permanent: it lives this long
    if "SESSION_ID_LENGTH" in settings:
        length = settings["SESSION_ID_LENGTH"]
        if not isinstance(length, int) or not 32 <= length <= 64:
            raise ConfigError(
                f"SESSION_ID_LENGTH = {length!r}: coatcheck ids have 32 to 64 random bytes "
                "(32 = 256 bits, the default); remove it or set 32..64"
            )
        out["id_bytes"] = length
    every = settings.get("SESSION_CLEANUP_N_REQUESTS")
    if every:  # Flask-Session cleans up once in N requests on average: gc's 1/N
        out["gc_probability"], out["gc_divisor"] = 1, int(every)
    return out


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _same(value: Any, harmless: object) -> bool:
    if harmless is _ANY:
        return False
    if isinstance(value, str) and isinstance(harmless, str):
        return value.lower() == harmless.lower()
    return bool(value == harmless)


# --- in views ---------------------------------------------------------------------------------


def current_session() -> FlaskSession:
    """``flask.session``, typed as the coatcheck session it is."""
    return _ours(current_flask_session)


def write_close() -> None:
    """Persist the session now and release its lock (session_write_close)."""
    current_session().write_close()


def regenerate(delete_old: bool = True, grace: float | None = None) -> None:
    """New id, same data: call right after login (session_regenerate_id). ``grace``: seconds
    the old id still forwards to the new one (default ``Config.regenerate_grace``)."""
    current_session().regenerate(delete_old, grace)


def destroy() -> None:
    """Delete the session and expire its cookie: call on logout (session_destroy)."""
    current_session().destroy()


def track_logins(app: Flask) -> None:
    """Mark sessions with their user when Flask-Login logs one in: ``login_user()`` then
    regenerates the session id (against fixation, which Flask-Login alone does not do) and
    enters the session in the user's index (``get_id()``), so ``user_sessions()`` and
    ``logout_everywhere()`` work; ``logout_user()`` takes it out again."""
    from flask_login import user_logged_in, user_logged_out  # type: ignore[import-untyped]

    def logged_in(sender: Any, user: Any = None, **_: Any) -> None:
        current_session().session.login(str(user.get_id()))

    def logged_out(sender: Any, user: Any = None, **_: Any) -> None:
        session = current_session().session
        if not session.closed:
            session.user = None

    # strong references: the receivers live as long as the app
    user_logged_in.connect(logged_in, app, weak=False)
    user_logged_out.connect(logged_out, app, weak=False)


def _ours(s: flask_sessions.SessionMixin) -> FlaskSession:
    if not isinstance(s, FlaskSession):
        raise RuntimeError("flask.session is not a coatcheck session; call init_app(app)")
    return s


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
