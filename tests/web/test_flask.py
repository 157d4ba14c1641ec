"""The Flask session interface, driven through Flask's test client and examples/flask_app.py."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from coatcheck import (  # noqa: E402
    Client,
    Config,
    ConfigError,
    EncodeError,
    LockTimeout,
    SessionManager,
    SessionNotLoaded,
    ids,
)
from coatcheck.locks import new_token  # noqa: E402
from coatcheck.stores.base import LOCKED, LockRequest  # noqa: E402
from coatcheck.web.common import WebOptions  # noqa: E402
from coatcheck.web.flask import (  # noqa: E402
    SessionInterface,
    config_from,
    current_session,
    init_app,
    regenerate,
    session_options,
)
from tests.web.djangoapp.counting import CountingStore  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flask_app.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("coatcheck_flask_example", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(str(tmp_path / "sessions.db"))


def make(
    store: CountingStore, clock: Any = None, web: WebOptions | None = None, **options: Any
) -> tuple[Any, SessionManager]:
    config = Config(gc_probability=0, lock_wait=0.2, **options)
    manager = SessionManager(store, config, clock=clock)
    app = _example().create_app({"TESTING": True}, SessionInterface(manager, options=web))
    return app, manager


UA = Client(user_agent="pytest")


def browser(app: Any) -> Any:
    """Flask's test client, with a User-Agent (sessions are bound to it)."""
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = UA.user_agent
    return client


def cookie_of(response: Any, name: str = "session") -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(name + "="):
            return str(header.split(";", 1)[0].split("=", 1)[1])
    return None


def test_set_get_and_cookie_only_when_id_changes(store: CountingStore) -> None:
    app, _ = make(store)
    client = browser(app)
    first = client.get("/")
    assert b"visits: 1" in first.data
    sid = cookie_of(first)
    assert sid and ids.is_well_formed(sid)
    second = client.get("/")
    assert b"visits: 2" in second.data
    assert cookie_of(second) is None  # same id: no Set-Cookie
    assert "Cookie" in second.headers["Vary"]
    assert "no-store" in second.headers["Cache-Control"]
    # the store holds the hash of the id, never the id
    assert store.validate_id(ids.storage_key(sid))


def test_untouched_session_costs_nothing(store: CountingStore) -> None:
    app, _ = make(store)
    client = browser(app)
    client.get("/")  # a session exists and its cookie is sent below
    store.calls.clear()
    response = client.get("/health")
    assert response.data == b"ok"
    assert store.calls == []
    assert "Set-Cookie" not in response.headers
    assert "Vary" not in response.headers


def test_login_regenerates_and_old_id_is_dead(store: CountingStore) -> None:
    app, _ = make(store)
    client = browser(app)
    before = cookie_of(client.get("/"))
    after_login = client.post("/login", data={"user": "ada"})
    after = cookie_of(after_login)
    assert after and before and after != before
    assert not store.validate_id(ids.storage_key(before))
    assert b"Hello ada" in client.get("/").data
    # an attacker replaying the pre-login id gets a fresh, anonymous session
    replay = browser(app)
    replay.set_cookie("session", before)
    page = replay.get("/")
    assert b"Hello nobody" in page.data and b"visits: 1" in page.data
    assert cookie_of(page) not in (None, before, after)


def test_logout_destroys_and_expires_cookie(store: CountingStore) -> None:
    app, _ = make(store)
    client = browser(app)
    client.post("/login", data={"user": "ada"})
    sid = client.get_cookie("session")
    assert sid is not None
    out = client.post("/logout")
    assert "Max-Age=0" in out.headers["Set-Cookie"]
    assert not store.validate_id(ids.storage_key(sid.value))
    replay = browser(app)
    replay.set_cookie("session", sid.value)
    assert b"Hello nobody" in replay.get("/").data


def test_flash_tuples_and_markup_round_trip(store: CountingStore) -> None:
    app, _ = make(store)
    client = browser(app)
    client.post("/login", data={"user": "<ada>"})
    page = client.get("/").data
    assert b"<li class=info>Welcome, &lt;ada&gt;</li>" in page
    assert b"<li class=html><b>Signed in</b></li>" in page  # Markup survived as Markup
    assert b"<li" not in client.get("/").data  # shown once


def test_read_only_view_leaves_store_untouched(store: CountingStore) -> None:
    app, _ = make(store)
    client = browser(app)
    client.post("/login", data={"user": "ada"})
    store.calls.clear()
    response = client.get("/whoami")
    assert response.json == {"user": "ada"}
    assert store.calls == ["read"]  # no lock taken, nothing written, touched or released
    assert "Set-Cookie" not in response.headers


def test_write_close_releases_lock_early(store: CountingStore) -> None:
    app, manager = make(store)

    @app.get("/early")
    def early() -> Any:
        flask.session["x"] = 1
        current_session().write_close()
        # a concurrent request for the same session gets the lock at once
        other = manager.start(flask.request.cookies["session"], client=UA)
        assert other["x"] == 1
        other.abort()
        return "ok"

    client = browser(app)
    client.get("/")
    assert client.get("/early").data == b"ok"


def test_5xx_is_not_saved_and_lock_is_released(store: CountingStore) -> None:
    app, manager = make(store)
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom() -> Any:
        flask.session["broken"] = True
        raise RuntimeError("view failed")

    client = browser(app)
    client.get("/")
    assert client.get("/boom").status_code == 500
    sid = client.get_cookie("session")
    assert sid is not None
    check = manager.start(sid.value, client=UA)  # would raise LockTimeout if the lock leaked
    assert "broken" not in check and check["visits"] == 1
    check.abort()


def test_save_on_error_saves_a_5xx(tmp_path: Path) -> None:
    app = _example().create_app(
        {
            "TESTING": True,
            "COATCHECK_STORE": f"sqlite:///{tmp_path / 'err.db'}",
            "COATCHECK_SAVE_ON_ERROR": True,
        }
    )

    @app.get("/partial")
    def partial() -> Any:
        flask.session["partial"] = "kept"
        return "failed", 503

    @app.get("/peek")
    def peek() -> Any:
        return str(flask.session.get("partial", "-"))

    client = browser(app)
    client.get("/")
    assert client.get("/partial").status_code == 503
    assert client.get("/peek").data == b"kept"  # saved: COATCHECK_SAVE_ON_ERROR is on


def test_propagated_exception_releases_lock(store: CountingStore) -> None:
    app, manager = make(store)  # TESTING: Flask re-raises, save_session never runs

    @app.get("/boom")
    def boom() -> Any:
        flask.session["broken"] = True
        raise RuntimeError("view failed")

    client = browser(app)
    client.get("/")
    with pytest.raises(RuntimeError):
        client.get("/boom")
    sid = client.get_cookie("session")
    assert sid is not None
    check = manager.start(sid.value, client=UA)
    assert "broken" not in check
    check.abort()


def test_store_unavailable_is_503(tmp_path: Path) -> None:
    # a real SQLite store whose database path cannot be opened
    broken = CountingStore(str(tmp_path / "missing-dir" / "sessions.db"))
    app, _ = make(broken)
    client = browser(app)
    client.set_cookie("session", ids.new_id())
    assert client.get("/").status_code == 503
    assert client.get("/health").status_code == 200  # untouched session: unaffected


def test_conflict_is_409(store: CountingStore) -> None:
    app, manager = make(store, lock_mode="optimistic")

    @app.get("/race")
    def race() -> Any:
        flask.session["x"] = "mine"
        other = manager.start(flask.request.cookies["session"], client=UA)
        other["x"] = "theirs"
        other.write_close()
        return "ok"

    client = browser(app)
    client.get("/")
    assert client.get("/race").status_code == 409


def test_flask_session_regenerate_api_and_lock_mode(store: CountingStore) -> None:
    app, _ = make(store)

    @app.get("/regen")
    @session_options(lock_mode="none")
    def regen() -> Any:
        app.session_interface.regenerate(flask.session)  # type: ignore[attr-defined]
        return "ok"

    client = browser(app)
    first = cookie_of(client.get("/"))
    store.calls.clear()
    second = cookie_of(client.get("/regen"))
    assert second and second != first
    assert "release" not in store.calls  # lock_mode none: no lock was taken
    assert b"visits: 2" in client.get("/").data


def test_init_app_reads_config(tmp_path: Path) -> None:
    app = flask.Flask("cfg")
    app.config.update(
        COATCHECK_STORE=f"sqlite:///{tmp_path / 'cfg.db'}",
        COATCHECK_COOKIE_NAME="sid",
        COATCHECK_IDLE_TIMEOUT=600,
        COATCHECK_GC_PROBABILITY=0,
        SESSION_PERMANENT=False,
    )
    interface = init_app(app)
    assert interface.manager.config.cookie_name == "sid"
    assert interface.manager.config.idle_timeout == 600

    @app.get("/")
    def index() -> Any:
        flask.session["a"] = 1
        flask.session.permanent = True
        return "ok"

    response = browser(app).get("/")
    assert response.headers["Set-Cookie"].startswith("sid=")
    assert "Max-Age=2678400" in response.headers["Set-Cookie"]  # PERMANENT_SESSION_LIFETIME
    bad = flask.Flask("bad")
    bad.config.update(COATCHECK_STORE="memory://", COATCHECK_IDLE_TIMOUT=5)
    with pytest.raises(ValueError, match="COATCHECK_IDLE_TIMOUT"):
        init_app(bad)


def test_lock_is_held_by_exclusive_view(store: CountingStore) -> None:
    app, _ = make(store)

    @app.get("/hold")
    def hold() -> Any:
        flask.session["x"] = 1
        key = ids.storage_key(flask.request.cookies["session"])
        # while the view runs, the lock is taken: another request's token is refused
        held = store.read(key, LockRequest(new_token(), 5)) is LOCKED
        return "locked" if held else "free"

    client = browser(app)
    client.get("/")
    assert client.get("/hold").data == b"locked"


@pytest.mark.parametrize("trusted", [True, False])
def test_ip_binding_believes_only_trusted_proxies(tmp_path: Path, trusted: bool) -> None:
    app = _example().create_app(
        {
            "TESTING": True,
            "COATCHECK_STORE": f"sqlite:///{tmp_path / 'ip.db'}",
            "COATCHECK_FINGERPRINT": ["user_agent", "ip"],
            "COATCHECK_TRUSTED_PROXIES": ["127.0.0.1/32"] if trusted else [],
        }
    )
    client = browser(app)
    assert b"visits: 1" in client.get("/", headers={"X-Forwarded-For": "203.0.113.7"}).data
    moved = client.get("/", headers={"X-Forwarded-For": "198.51.100.7"}).data
    # behind a trusted proxy the forwarded address is the client's: another network resets
    # the session; from an untrusted peer the header is ignored, so nothing changes
    assert (b"visits: 1" in moved) is trusted


# --- Flask-Session compatibility ------------------------------------------------------------


def flask_app(tmp_path: Path, **settings: Any) -> Any:
    """A bare Flask app on init_app, with ``settings`` in app.config; TESTING re-raises."""
    app = flask.Flask("settings")
    app.config.update(
        TESTING=True,
        COATCHECK_STORE=f"sqlite:///{tmp_path / 'settings.db'}",
        COATCHECK_GC_PROBABILITY=0,
        **settings,
    )
    init_app(app)

    @app.get("/")
    def index() -> Any:
        flask.session["n"] = flask.session.get("n", 0) + 1
        s = current_session().session
        return {"permanent": flask.session.permanent, "idle": s.idle_timeout}

    return app


def test_sid_is_the_session_id(store: CountingStore) -> None:
    app, _ = make(store)

    @app.get("/sid")
    def sid() -> Any:
        flask.session["x"] = 1
        return str(flask.session.sid)  # type: ignore[attr-defined]

    client = browser(app)
    first = client.get("/sid")
    assert first.data.decode() == cookie_of(first)
    assert client.get("/sid").data == first.data  # same session, same id


def test_flask_cookie_keys_are_honoured_and_coatcheck_keys_win(tmp_path: Path) -> None:
    app = flask_app(
        tmp_path,
        SESSION_COOKIE_NAME="flask_sid",
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_PATH="/",
    )
    header = browser(app).get("/").headers["Set-Cookie"]
    assert header.startswith("flask_sid=") and "SameSite=Strict" in header
    assert "HttpOnly" not in header
    assert "Secure" in header  # Flask's default SESSION_COOKIE_SECURE=False is not adopted
    config = config_from(
        {"SESSION_COOKIE_NAME": "flask_sid", "COATCHECK_COOKIE_NAME": "cc", **_flask_defaults()}
    )
    assert config.cookie_name == "cc" and config.cookie_secure and config.cookie_samesite == "Lax"
    plain = config_from({**_flask_defaults(), "COATCHECK_COOKIE_SECURE": False})
    assert not plain.cookie_secure  # turning Secure off takes coatcheck's own key


def _flask_defaults() -> dict[str, Any]:
    return dict(flask.Flask.default_config)


def test_flask_session_keys_are_mapped() -> None:
    base = _flask_defaults()
    config = config_from({**base, "SESSION_ID_LENGTH": 48, "SESSION_CLEANUP_N_REQUESTS": 50})
    assert config.id_bytes == 48
    assert (config.gc_probability, config.gc_divisor) == (1, 50)
    explicit = config_from({**base, "SESSION_CLEANUP_N_REQUESTS": 50, "COATCHECK_GC_DIVISOR": 7})
    assert explicit.gc_divisor == 7  # explicit COATCHECK_* wins over a mapped key
    with pytest.raises(ConfigError, match="SESSION_ID_LENGTH"):
        config_from({**base, "SESSION_ID_LENGTH": 16})  # fewer than 256 bits
    # Flask-Session's defaults ask for nothing coatcheck does not do
    config_from(
        {
            **base,
            "SESSION_USE_SIGNER": False,
            "SESSION_KEY_PREFIX": "session:",
            "SESSION_SERIALIZATION_FORMAT": "JSON",
            "SESSION_FILE_THRESHOLD": 500,
            "SESSION_REDIS": None,
        }
    )


@pytest.mark.parametrize(
    ("key", "value", "instead"),
    [
        ("SESSION_TYPE", "redis", "COATCHECK_STORE = 'redis://"),
        ("SESSION_TYPE", "sqlalchemy", "postgresql://"),
        ("SESSION_TYPE", "mongodb", "no such store"),
        ("SESSION_REDIS", object(), "redis://"),
        ("SESSION_USE_SIGNER", True, "remove it"),
        ("SESSION_KEY_PREFIX", "app:", "prefix="),
        ("SESSION_SERIALIZATION_FORMAT", "msgpack", "JSON only"),
        ("SESSION_FILE_DIR", "/tmp/flask_session", "file://"),
        ("SESSION_FILE_MODE", 0o640, "mode="),
        ("SESSION_SQLALCHEMY_TABLE", "web_sessions", "table="),
        ("SESSION_DYNAMODB", object(), "no such store"),
        ("SESSION_REFRESH_EACH_REQUEST", False, "TOUCH_THRESHOLD"),
    ],
)
def test_flask_session_keys_coatcheck_cannot_honour_are_refused(
    tmp_path: Path, key: str, value: Any, instead: str
) -> None:
    app = flask.Flask("refused")
    app.config.update({"COATCHECK_STORE": f"sqlite:///{tmp_path / 'r.db'}", key: value})
    with pytest.raises(ConfigError, match=key) as refused:
        init_app(app)
    assert instead in str(refused.value)


def test_session_permanent_default_persists_the_cookie_for_the_idle_timeout(
    tmp_path: Path,
) -> None:
    response = browser(flask_app(tmp_path, COATCHECK_IDLE_TIMEOUT=600)).get("/")
    assert response.json == {"permanent": True, "idle": 600}
    assert "Max-Age=600" in response.headers["Set-Cookie"]  # cookie and server agree


def test_permanent_session_lifetime_is_the_idle_timeout_when_set(tmp_path: Path) -> None:
    app = flask_app(tmp_path, PERMANENT_SESSION_LIFETIME=timedelta(hours=2))
    response = browser(app).get("/")
    assert response.json == {"permanent": True, "idle": 7200}
    assert "Max-Age=7200" in response.headers["Set-Cookie"]


def test_flask_default_lifetime_does_not_become_every_sessions_timeout(tmp_path: Path) -> None:
    response = browser(flask_app(tmp_path)).get("/")
    assert response.json == {"permanent": True, "idle": Config().idle_timeout}  # not 31 days
    assert f"Max-Age={int(Config().idle_timeout)}" in response.headers["Set-Cookie"]


def test_non_permanent_sessions_get_a_browser_session_cookie(tmp_path: Path) -> None:
    response = browser(flask_app(tmp_path, SESSION_PERMANENT=False)).get("/")
    assert response.json == {"permanent": False, "idle": Config().idle_timeout}
    assert "Max-Age" not in response.headers["Set-Cookie"]


def test_permanent_true_is_remember_me_for_cookie_and_server(store: CountingStore) -> None:
    now = [1_000_000.0]
    app, _ = make(store, clock=lambda: now[0])  # idle_timeout 1440 s, browser cookie
    remembered, forgotten = browser(app), browser(app)
    login = remembered.post("/login", data={"user": "ada", "remember": "on"})
    assert "Max-Age=2592000" in login.headers["Set-Cookie"]  # PERMANENT_SESSION_LIFETIME
    plain = forgotten.post("/login", data={"user": "bob"})
    assert "Max-Age" not in plain.headers["Set-Cookie"]
    now[0] += 2 * 3600  # past the configured idle timeout, well within the permanent one
    assert b"Hello ada" in remembered.get("/").data  # the server honours the lifetime too
    assert b"Hello nobody" in forgotten.get("/").data


def test_permanent_false_gives_a_browser_session_cookie(tmp_path: Path) -> None:
    app = flask_app(tmp_path, COATCHECK_IDLE_TIMEOUT=600)  # SESSION_PERMANENT: True

    @app.get("/forget")
    def forget() -> Any:
        flask.session["n"] = 1
        flask.session.permanent = False
        return {"permanent": flask.session.permanent}

    @app.get("/remember")
    def remember() -> Any:
        flask.session.permanent = True
        return {"permanent": flask.session.permanent}

    client = browser(app)
    assert "Max-Age=600" in client.get("/").headers["Set-Cookie"]  # permanent by default
    forgot = client.get("/forget")
    assert forgot.json == {"permanent": False}
    assert "Max-Age" not in forgot.headers["Set-Cookie"]  # the persistent cookie replaced
    assert client.get("/").json == {"permanent": False, "idle": 600}  # it stays so
    again = client.get("/remember")
    assert again.json == {"permanent": True}
    assert "Max-Age=2678400" in again.headers["Set-Cookie"]  # PERMANENT_SESSION_LIFETIME


def test_regenerate_with_grace_lets_in_flight_requests_follow(store: CountingStore) -> None:
    app, _ = make(store)

    @app.post("/login-grace")
    def login_grace() -> Any:
        regenerate(grace=30)
        flask.session["user"] = "ada"
        return "ok"

    client = browser(app)
    before = cookie_of(client.get("/"))
    after = cookie_of(client.post("/login-grace"))
    assert before and after and after != before
    late = browser(app)  # a request that left with the old id before the login answered
    late.set_cookie("session", before)
    assert b"Hello ada" in late.get("/").data


def test_encode_error_propagates_as_the_apps_bug(store: CountingStore) -> None:
    app, manager = make(store)

    @app.get("/date")
    def date() -> Any:
        flask.session["when"] = datetime.now(UTC)  # not JSON
        return "ok"

    client = browser(app)
    client.get("/")
    with pytest.raises(EncodeError):
        client.get("/date")  # TESTING: Flask re-raises it, as any exception
    app.config["PROPAGATE_EXCEPTIONS"] = False
    failed = client.get("/date")
    assert failed.status_code == 500 and b"session error" not in failed.data  # Flask's 500
    sid = client.get_cookie("session")
    assert sid is not None
    check = manager.start(sid.value, client=UA)  # the lock was released
    assert "when" not in check
    check.abort()


def test_app_cache_control_is_kept(store: CountingStore) -> None:
    app, _ = make(store)

    @app.get("/cached")
    def cached() -> Any:
        flask.session["x"] = 1
        return "ok", 200, {"Cache-Control": "private, max-age=60", "Vary": "Accept"}

    response = browser(app).get("/cached")
    assert response.headers.getlist("Cache-Control") == ["private, max-age=60"]
    assert response.headers["Vary"] == "Accept, Cookie"


def test_on_error_answers_at_first_use_and_at_save(store: CountingStore) -> None:
    def busy(exc: Exception) -> tuple[int, list[tuple[str, str]], bytes]:
        return 429, [("Retry-After", "9")], type(exc).__name__.encode()

    web = WebOptions(on_error=busy)
    app, manager = make(store, web=web, lock_mode="optimistic")
    caught: list[Exception] = []

    @app.get("/race")
    def race() -> Any:
        flask.session["x"] = "mine"
        other = manager.start(flask.request.cookies["session"], client=UA)
        other["x"] = "theirs"
        other.write_close()
        return "ok"

    client = browser(app)
    client.get("/")
    saved = client.get("/race")
    assert (saved.status_code, saved.data) == (429, b"SessionConflict")

    exclusive, holder_manager = make(CountingStore(str(store.path)), web=web)

    @exclusive.errorhandler(LockTimeout)
    def note(e: LockTimeout) -> Any:
        caught.append(e)
        return e  # Flask renders the HTTPException: on_error's reply

    other = browser(exclusive)
    other.get("/")
    sid = other.get_cookie("session")
    assert sid is not None
    holder = holder_manager.start(sid.value, client=UA)
    try:
        loaded = other.get("/")
    finally:
        holder.abort()
    assert (loaded.status_code, loaded.data) == (429, b"LockTimeout")
    assert loaded.headers["Retry-After"] == "9" and len(caught) == 1


def test_skip_route_has_no_session(store: CountingStore) -> None:
    app, _ = make(store)

    @app.get("/static-ish")
    @session_options(skip=True)
    def static_ish() -> Any:
        return flask.session.get("user", "-")

    client = browser(app)
    client.get("/")
    store.calls.clear()
    with pytest.raises(SessionNotLoaded):
        client.get("/static-ish")
    assert store.calls == []


@pytest.mark.parametrize("kind", ["manager", "store", "url"])
def test_init_app_takes_a_manager_a_store_or_a_url(tmp_path: Path, kind: str) -> None:
    path = str(tmp_path / "kinds.db")
    given: Any = {
        "manager": SessionManager(CountingStore(path), Config(cookie_name="m")),
        "store": CountingStore(path),
        "url": f"sqlite:///{path}",
    }[kind]
    app = flask.Flask("kinds")
    app.config["COATCHECK_COOKIE_NAME"] = "from_settings"
    interface = init_app(app, given)
    expected = "m" if kind == "manager" else "from_settings"
    assert interface.manager.config.cookie_name == expected
    with pytest.raises(ConfigError):
        SessionInterface(SessionManager(CountingStore(path)), Config())


def test_permanent_in_before_request_writes_only_once(tmp_path: Path) -> None:
    store = CountingStore(str(tmp_path / "idiom.db"))
    app = flask.Flask("idiom")
    app.config.update(TESTING=True, COATCHECK_GC_PROBABILITY=0)
    init_app(app, store)

    @app.before_request
    def make_permanent() -> None:
        flask.session.permanent = True  # the usual Flask idiom, on every request

    @app.get("/")
    def index() -> Any:
        flask.session.setdefault("user", "ada")
        return {"idle": current_session().session.idle_timeout}

    client = browser(app)
    first = client.get("/")
    assert first.json == {"idle": 31 * 86400}  # PERMANENT_SESSION_LIFETIME
    assert "Max-Age=2678400" in first.headers["Set-Cookie"]
    store.calls.clear()
    assert client.get("/").json == {"idle": 31 * 86400}
    assert "write" not in store.calls  # already permanent: remember() is not redone
