"""The Flask session interface, driven through Flask's test client and examples/flask_app.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

flask = pytest.importorskip("flask")

from coatcheck import Client, Config, SessionManager, ids  # noqa: E402
from coatcheck.locks import new_token  # noqa: E402
from coatcheck.stores.base import LOCKED, LockRequest  # noqa: E402
from coatcheck.web.flask import (  # noqa: E402
    CoatcheckSessionInterface,
    current_session,
    init_app,
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


def make(store: CountingStore, **options: Any) -> tuple[Any, SessionManager]:
    manager = SessionManager(store, Config(gc_probability=0, lock_wait=0.2, **options))
    app = _example().create_app({"TESTING": True}, CoatcheckSessionInterface(manager))
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
    assert "Secure" in first.headers["Set-Cookie"] and "HttpOnly" in first.headers["Set-Cookie"]
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


def test_lock_timeout_is_503_with_retry_after(store: CountingStore) -> None:
    app, manager = make(store)
    client = browser(app)
    client.get("/")
    sid = client.get_cookie("session")
    assert sid is not None
    holder = manager.start(sid.value, client=UA)  # another request holds the lock
    try:
        response = client.get("/")
        assert response.status_code == 503
        assert "Retry-After" in response.headers
    finally:
        holder.abort()
    assert client.get("/").status_code == 200


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


def test_clear_destroys_like_flask_session(store: CountingStore) -> None:
    app, _ = make(store)

    @app.get("/clear")
    def clear() -> Any:
        flask.session.clear()
        return "cleared"

    client = browser(app)
    client.get("/")
    sid = client.get_cookie("session")
    assert sid is not None
    response = client.get("/clear")
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert not store.validate_id(ids.storage_key(sid.value))


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


def test_migrate_hook_copies_old_session(store: CountingStore) -> None:
    old_store = {"legacy-signed-cookie-value": {"user": "grace"}}
    manager = SessionManager(store, Config(gc_probability=0))
    interface = CoatcheckSessionInterface(manager, migrate=lambda c: old_store.pop(c, None))
    app = _example().create_app({"TESTING": True}, interface)
    client = browser(app)
    client.set_cookie("session", "legacy-signed-cookie-value")
    response = client.get("/")
    assert b"Hello grace" in response.data
    new = cookie_of(response)
    assert new and ids.is_well_formed(new)
    assert old_store == {}
    assert b"Hello grace" in client.get("/").data


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
