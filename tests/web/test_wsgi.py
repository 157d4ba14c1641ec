"""The WSGI middleware, driven through werkzeug's test client and examples/wsgi_app.py."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

werkzeug_test = pytest.importorskip("werkzeug.test")

from coatcheck import (  # noqa: E402
    Client,
    CoatcheckError,
    Config,
    ConfigError,
    SessionClosed,
    SessionManager,
    SessionNotLoaded,
    ids,
    open_store,
)
from coatcheck.locks import new_token  # noqa: E402
from coatcheck.stores.base import LOCKED, LockRequest, Store  # noqa: E402
from coatcheck.stores.sqlite import SQLiteStore  # noqa: E402
from coatcheck.web.common import WebOptions, error_response  # noqa: E402
from coatcheck.web.wsgi import (  # noqa: E402
    ENVIRON_KEY,
    SessionMiddleware,
    configure_session,
    get_session,
    session_options,
)
from tests.services import REDIS_URL, require  # noqa: E402
from tests.web.djangoapp.counting import CountingStore  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wsgi_app.py"
UA = "pytest"
TEXT = [("Content-Type", "text/plain")]


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("coatcheck_wsgi_example", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(str(tmp_path / "sessions.db"))


def manager_for(store: Store, **options: Any) -> SessionManager:
    return SessionManager(store, Config(gc_probability=0, lock_wait=0.2, **options))


class Browser:
    """werkzeug's test client with a fixed User-Agent and peer address (sessions bind to UA)."""

    def __init__(self, app: Any, addr: str = "127.0.0.1", ua: str = UA) -> None:
        self.client = werkzeug_test.Client(app)
        self.env = {"HTTP_USER_AGENT": ua, "REMOTE_ADDR": addr}

    def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        # buffered: the body is read and closed at once, as a server does
        return self.client.get(path, environ_base=self.env, headers=headers or {}, buffered=True)

    def post(self, path: str) -> Any:
        return self.client.post(path, environ_base=self.env, buffered=True)

    def cookie(self) -> str | None:
        c = self.client.get_cookie("session")
        return None if c is None else c.value

    def send_cookie(self, value: str) -> None:
        self.client.set_cookie("session", value)


def example(store: Store, **options: Any) -> tuple[Browser, SessionManager]:
    manager = manager_for(store, **options)
    return Browser(_example().create_app(manager)), manager


def cookie_of(response: Any) -> str | None:
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith("session="):
            return str(header.split(";", 1)[0].split("=", 1)[1])
    return None


def lock_free(store: Store, key: str) -> bool:
    """True when a foreign request could take the session's lock right now."""
    token = new_token()
    if store.read(key, LockRequest(token, 5)) is LOCKED:
        return False
    store.release(key, token)
    return True


def wrap(app: Any, store: Store, **options: Any) -> tuple[Browser, SessionManager]:
    """A one-off WSGI app in the middleware, for behaviours the example does not show."""
    config = {k: options.pop(k) for k in list(options) if k in Config.__dataclass_fields__}
    manager = manager_for(store, **config)
    web = options.pop("options", None) or WebOptions(**options)
    return Browser(SessionMiddleware(app, manager, options=web)), manager


def counter_app(environ: Any, start_response: Any) -> Iterable[bytes]:
    session = environ[ENVIRON_KEY]
    session["n"] = session.get("n", 0) + 1
    start_response("200 OK", TEXT)
    return [str(session["n"]).encode()]


# --- the basics ---------------------------------------------------------------------------


def test_set_get_and_cookie_only_when_id_changes(store: CountingStore) -> None:
    browser, _ = example(store)
    first = browser.get("/")
    assert first.get_data() == b"Hello nobody, visits: 1\n"
    sid = cookie_of(first)
    assert sid and ids.is_well_formed(sid)
    second = browser.get("/")
    assert second.get_data() == b"Hello nobody, visits: 2\n"
    assert cookie_of(second) is None  # same id: no Set-Cookie
    assert second.headers["Vary"] == "Cookie"
    assert second.headers["Cache-Control"] == "private, no-store"
    assert store.validate_id(ids.storage_key(sid))  # stored under the hash of the id


def test_untouched_request_makes_no_store_call(store: CountingStore) -> None:
    browser, _ = example(store)
    browser.get("/")  # a session exists, and its cookie is sent below
    store.calls.clear()

    def untouched(environ: Any, start_response: Any) -> Iterable[bytes]:
        start_response("200 OK", TEXT)
        return [b"ok"]

    app = SessionMiddleware(untouched, manager_for(store))
    plain = Browser(app)
    plain.send_cookie(browser.cookie() or "")
    response = plain.get("/")
    skipped = browser.get("/health")  # the example's skip=True route
    assert response.get_data() == b"ok" and skipped.get_data() == b"ok\n"
    assert store.calls == []
    for r in (response, skipped):
        assert "Set-Cookie" not in r.headers and "Vary" not in r.headers


def test_first_touch_reads_and_locks_in_one_call(store: CountingStore) -> None:
    def hold(environ: Any, start_response: Any) -> Iterable[bytes]:
        session = get_session(environ)
        session["x"] = 1
        calls = list(store.calls)
        held = not lock_free(store, ids.storage_key(session.session.id))
        start_response("200 OK", TEXT)
        return [f"{calls} {held}".encode()]

    browser, _ = wrap(hold, store)
    browser.get("/")
    store.calls.clear()
    assert browser.get("/").get_data() == b"['read'] True"


def test_login_regenerates_and_old_id_is_dead(store: CountingStore) -> None:
    browser, _ = example(store)
    before = cookie_of(browser.get("/"))
    login = browser.post("/login?user=ada")
    after = cookie_of(login)
    assert before and after and before != after
    assert not store.validate_id(ids.storage_key(before))
    assert browser.get("/").get_data() == b"Hello ada, visits: 2\n"
    attacker = Browser(browser.client.application)
    attacker.send_cookie(before)
    page = attacker.get("/")
    assert page.get_data() == b"Hello nobody, visits: 1\n"
    assert cookie_of(page) not in (None, before, after)


def test_logout_destroys_data_and_expires_cookie(store: CountingStore) -> None:
    browser, _ = example(store)
    browser.post("/login?user=ada")
    sid = browser.cookie()
    assert sid is not None
    out = browser.post("/logout")
    assert "Max-Age=0" in out.headers["Set-Cookie"]
    assert not store.validate_id(ids.storage_key(sid))
    assert store.count() == 0
    replay = Browser(browser.client.application)
    replay.send_cookie(sid)
    assert replay.get("/").get_data() == b"Hello nobody, visits: 1\n"
    assert replay.get("/whoami").get_data() == b"nobody\n"


def test_malformed_cookie_gets_a_fresh_session(store: CountingStore) -> None:
    browser, _ = example(store)
    for junk in ("x", "a" * 300, "..%00", '"unterminated'):
        browser.send_cookie(junk)
        page = browser.get("/")
        assert page.status_code == 200 and page.get_data() == b"Hello nobody, visits: 1\n"
        assert cookie_of(page) not in (None, junk)


# --- per-route options --------------------------------------------------------------------


def test_read_only_leaves_store_untouched(store: CountingStore) -> None:
    browser, _ = example(store)
    browser.post("/login?user=ada")
    key = ids.storage_key(browser.cookie() or "")
    before = store.read(key)
    store.calls.clear()

    @session_options(read_only=True)
    def peek(environ: Any, start_response: Any) -> Iterable[bytes]:
        user = get_session(environ)["user"]
        free = lock_free(store, key)  # no lock held while the route runs
        start_response("200 OK", TEXT)
        return [f"{user} {free}".encode()]

    app = SessionMiddleware(peek, manager_for(store))
    reader = Browser(app)
    reader.send_cookie(browser.cookie() or "")
    store.calls.clear()
    response = reader.get("/")
    assert response.get_data() == b"ada True"
    assert store.calls == ["read", "read", "release"]  # ours, then lock_free's probe
    assert store.read(key) == before  # same bytes, version and deadline
    assert browser.get("/whoami").get_data() == b"ada\n"


def test_read_only_session_refuses_changes(store: CountingStore) -> None:
    @session_options(read_only=True)
    def change(environ: Any, start_response: Any) -> Iterable[bytes]:
        get_session(environ)["x"] = 1
        start_response("200 OK", TEXT)
        return [b"changed"]

    browser, _ = wrap(change, store)
    with pytest.raises(SessionClosed, match="read-only"):
        browser.get("/")


def test_options_only_before_first_touch_and_only_under_the_middleware(
    store: CountingStore,
) -> None:
    def late(environ: Any, start_response: Any) -> Iterable[bytes]:
        get_session(environ)["x"] = 1
        try:
            configure_session(environ, read_only=True)
        except SessionClosed as e:
            start_response("200 OK", TEXT)
            return [str(e).encode()]
        start_response("200 OK", TEXT)
        return [b"configured"]

    browser, _ = wrap(late, store)
    assert b"before the session is first used" in browser.get("/").get_data()
    with pytest.raises(ConfigError, match="SessionMiddleware"):
        configure_session({}, read_only=True)


def test_skip_route_refuses_the_session(store: CountingStore) -> None:
    @session_options(skip=True)
    def nosession(environ: Any, start_response: Any) -> Iterable[bytes]:
        get_session(environ)["x"] = 1
        start_response("200 OK", TEXT)
        return [b""]

    browser, _ = wrap(nosession, store)
    with pytest.raises(SessionNotLoaded, match="opted out"):
        browser.get("/")
    assert store.calls == []


def test_write_close_releases_lock_early(store: CountingStore) -> None:
    def early(environ: Any, start_response: Any) -> Iterable[bytes]:
        session = get_session(environ)
        session["n"] = session.get("n", 0) + 1
        key = ids.storage_key(session.session.id)
        session.write_close()
        free = lock_free(store, key)  # the slow part runs without the lock
        start_response("200 OK", TEXT)
        return [f"{session['n']} {free}".encode()]

    browser, _ = wrap(early, store)
    assert browser.get("/").get_data() == b"1 True"
    assert browser.get("/").get_data() == b"2 True"


def test_optimistic_route_merges_concurrent_keys(store: CountingStore) -> None:
    browser, manager = example(store)
    browser.get("/")
    sid = browser.cookie()

    @session_options(lock_mode="optimistic")
    def racing(environ: Any, start_response: Any) -> Iterable[bytes]:
        session = get_session(environ)
        session["mine"] = 1
        other = manager.start(sid, client=Client(user_agent=UA), lock_mode="optimistic")
        other["theirs"] = 2  # another request saves while this one runs
        other.write_close()
        start_response("200 OK", TEXT)
        return [b"ok"]

    racer, _ = wrap(racing, store)
    racer.send_cookie(sid or "")
    assert racer.get("/").status_code == 200
    merged = manager.start(sid, client=Client(user_agent=UA), read_only=True)
    assert (merged["mine"], merged["theirs"], merged["visits"]) == (1, 2, 1)


# --- failures: nothing saved, lock released -----------------------------------------------


def failing_app(store: Store, how: str) -> Any:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        session = get_session(environ)
        session["n"] = session.get("n", 0) + 1
        environ["test.key"] = ids.storage_key(session.session.id)
        if how == "raise":
            raise ValueError("the app broke")
        start_response("500 Internal Server Error" if how == "500" else "200 OK", TEXT)
        return [b"failed" if how == "500" else str(session["n"]).encode()]

    return app


@pytest.mark.parametrize("how", ["raise", "500"])
def test_failed_request_saves_nothing_and_releases_lock(store: CountingStore, how: str) -> None:
    browser, _ = wrap(failing_app(store, "ok"), store)
    assert browser.get("/").get_data() == b"1"
    sid = browser.cookie() or ""
    key = ids.storage_key(sid)
    before = store.read(key)
    failing = Browser(SessionMiddleware(failing_app(store, how), manager_for(store)))
    failing.send_cookie(sid)
    if how == "raise":
        with pytest.raises(ValueError, match="the app broke"):
            failing.get("/")
    else:
        assert failing.get("/").status_code == 500
    assert store.read(key) == before
    assert lock_free(store, key)
    assert browser.get("/").get_data() == b"2"


def test_save_on_error_saves_error_responses(store: CountingStore) -> None:
    options = WebOptions(save_on_error=True)
    browser, _ = wrap(failing_app(store, "500"), store, options=options)
    browser.get("/")
    assert browser.get("/").get_data() == b"failed"
    sid = browser.cookie()
    check = manager_for(store).start(sid, client=Client(user_agent=UA), read_only=True)
    assert check["n"] == 2


def gen_app(store: Store, fail_before_start: bool) -> Any:
    """A generator app: its body runs only as the server iterates it."""

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        session = get_session(environ)
        session["n"] = session.get("n", 0) + 1
        environ["test.key"] = ids.storage_key(session.session.id)
        if fail_before_start:
            raise ValueError("broke before start_response")
        start_response("200 OK", TEXT)
        yield b"first chunk"
        raise ValueError("broke mid-body")

    return app


@pytest.mark.parametrize("fail_before_start", [False, True])
def test_iterable_raising_releases_lock(store: CountingStore, fail_before_start: bool) -> None:
    seed, manager = wrap(counter_app, store)
    seed.get("/")  # an existing session, so the failing request takes its lock
    sid = seed.cookie() or ""
    key = ids.storage_key(sid)
    before = store.read(key)
    browser = Browser(SessionMiddleware(gen_app(store, fail_before_start), manager))
    browser.send_cookie(sid)
    store.calls.clear()
    with pytest.raises(ValueError, match="broke"):
        browser.get("/")
    assert store.calls[0] == "read"  # the lock was taken
    assert lock_free(store, key)
    after = manager.start(sid, client=Client(user_agent=UA), read_only=True)
    if fail_before_start:  # nothing saved
        assert store.read(key) == before
    else:  # saved when the headers were ready, before the body broke
        assert after["n"] == 2


def test_close_is_forwarded(store: CountingStore) -> None:
    closed: list[str] = []

    class Body:
        def __init__(self, start: Any) -> None:
            self.start = start

        def __iter__(self) -> Iterator[bytes]:
            yield b""  # start_response comes with the first step, as PEP 3333 allows
            self.start("200 OK", TEXT)
            yield b"body"

        def close(self) -> None:
            closed.append("closed")

    def app(environ: Any, start_response: Any) -> Body:
        get_session(environ)["x"] = 1
        return Body(start_response)

    browser, _ = wrap(app, store)
    response = browser.get("/")
    assert response.get_data() == b"body"
    assert closed == ["closed"]
    assert cookie_of(response) is not None  # saved at start_response, inside the first step


def test_touch_after_start_response_is_refused(store: CountingStore) -> None:
    def late(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"headers are out"
        get_session(environ)["x"] = 1

    browser, _ = wrap(late, store)
    with pytest.raises(SessionClosed, match="response has started"):
        browser.get("/")
    assert store.calls == []


# --- errors become answers ----------------------------------------------------------------


def test_lock_timeout_is_503_with_retry_after(store: CountingStore) -> None:
    browser, manager = example(store)
    browser.get("/")
    holder = manager.start(browser.cookie(), client=Client(user_agent=UA))
    busy = browser.get("/")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.get_data() == b"session busy with another request\n"
    assert "Set-Cookie" not in busy.headers
    holder.write_close()
    assert browser.get("/").get_data() == b"Hello nobody, visits: 2\n"


def test_store_unavailable_at_load_is_503(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "missing-dir" / "sessions.db"))
    browser, _ = wrap(counter_app, store)
    response = browser.get("/")
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.get_data() == b"session store unavailable\n"


def test_store_unavailable_at_save_is_503_and_nothing_saved(tmp_path: Path) -> None:
    path = str(tmp_path / "sessions.db")
    store = SQLiteStore(path, timeout=0.05)
    closed: list[bool] = []

    class Body(list[bytes]):
        def close(self) -> None:
            closed.append(True)

    def blocked(environ: Any, start_response: Any) -> Iterable[bytes]:
        get_session(environ)["n"] = 1
        # another process holds the database's write lock while this request saves
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            start_response("200 OK", TEXT)
        finally:
            other.execute("ROLLBACK")
            other.close()
        return Body([b"the app's body, replaced"])

    browser, _ = wrap(blocked, store)
    response = browser.get("/")
    assert response.status_code == 503
    assert response.get_data() == b"session store unavailable\n"
    assert closed == [True]  # the replaced body was still closed
    assert "Set-Cookie" not in response.headers
    assert store.count() == 0


def test_load_error_swallowed_by_a_framework_still_answers_503(store: CountingStore) -> None:
    browser, manager = example(store)
    browser.get("/")

    def framework(environ: Any, start_response: Any) -> Iterable[bytes]:
        try:
            get_session(environ)["n"] = 1
        except Exception:  # what Flask or Django do with any exception in a view
            start_response("500 Internal Server Error", TEXT)
            return [b"generic error page"]
        start_response("200 OK", TEXT)
        return [b"ok"]

    app = Browser(SessionMiddleware(framework, manager))
    app.send_cookie(browser.cookie() or "")
    holder = manager.start(browser.cookie(), client=Client(user_agent=UA))
    response = app.get("/")
    holder.abort()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("conflict_status", [409, 412])
def test_conflict_at_save_is_409_or_configured(store: CountingStore, conflict_status: int) -> None:
    seed, manager = example(store)
    seed.get("/")
    sid = seed.cookie()

    @session_options(lock_mode="optimistic")
    def racing(environ: Any, start_response: Any) -> Iterable[bytes]:
        session = get_session(environ)
        session["visits"] = 100
        other = manager.start(sid, client=Client(user_agent=UA), lock_mode="optimistic")
        other["visits"] = 200  # the same key, saved first by another request
        other.write_close()
        start_response("200 OK", TEXT)
        return [b"saved?"]

    def answer(exc: CoatcheckError) -> tuple[int, list[tuple[str, str]], bytes]:
        status, headers, body = error_response(exc)
        return (conflict_status if status == 409 else status), headers, body

    browser, _ = wrap(racing, store, on_error=answer)
    browser.send_cookie(sid or "")
    response = browser.get("/")
    assert response.status_code == conflict_status
    assert response.get_data() == b"session changed by another request; try again\n"
    check = manager.start(sid, client=Client(user_agent=UA), read_only=True)
    assert check["visits"] == 200


def test_configured_headers_and_existing_vary(store: CountingStore) -> None:
    def app(environ: Any, start_response: Any) -> Iterable[bytes]:
        get_session(environ)["x"] = 1
        start_response("200 OK", [*TEXT, ("Vary", "Accept"), ("Cache-Control", "public")])
        return [b""]

    def plain(environ: Any, start_response: Any) -> Iterable[bytes]:
        get_session(environ)["x"] = 1
        start_response("200 OK", TEXT)
        return [b""]

    merged = wrap(app, store)[0].get("/")
    assert merged.headers["Vary"] == "Accept, Cookie"
    # one header policy in every adapter: the app's own Cache-Control is kept
    assert merged.headers.getlist("Cache-Control") == ["public"]
    bare = wrap(plain, store, cache_control=None)[0].get("/")
    assert "Cache-Control" not in bare.headers and bare.headers["Vary"] == "Cookie"
    assert cookie_of(bare) is not None


# --- client address -----------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_for_believed_only_from_trusted_proxies(
    store: CountingStore, trusted: bool
) -> None:
    proxies = ("10.0.0.0/8",) if trusted else ()
    manager = manager_for(store, fingerprint=("user_agent", "ip"))
    app = SessionMiddleware(counter_app, manager, options=WebOptions(trusted_proxies=proxies))
    browser = Browser(app, addr="10.1.2.3")
    assert browser.get("/", {"X-Forwarded-For": "203.0.113.9"}).get_data() == b"1"
    # the same peer now claims another client address (another /24)
    again = browser.get("/", {"X-Forwarded-For": "198.51.100.7"})
    if trusted:  # the proxy is believed: a different client, so the session is not theirs
        assert again.get_data() == b"1" and cookie_of(again) is not None
    else:  # the header is ignored: the peer address is what was bound
        assert again.get_data() == b"2" and cookie_of(again) is None


# --- another store ------------------------------------------------------------------------


def test_redis_store_login_and_logout() -> None:
    from tests.support.redis import drop_namespace

    parts = urlsplit(REDIS_URL)
    require(parts.hostname or "127.0.0.1", parts.port or 6379, "redis")
    url = f"{REDIS_URL}?prefix=cc_wsgi_{uuid.uuid4().hex[:12]}:"
    store = open_store(url)
    try:
        browser, _ = example(store)
        assert browser.get("/").get_data() == b"Hello nobody, visits: 1\n"
        before = browser.cookie()
        browser.post("/login?user=ada")
        assert browser.cookie() != before
        assert browser.get("/").get_data() == b"Hello ada, visits: 2\n"
        sid = browser.cookie()
        browser.post("/logout")
        assert sid and not store.validate_id(ids.storage_key(sid))
        assert store.count() == 0
    finally:
        store.close()
        drop_namespace(url)


def test_app_that_never_starts_a_response_releases_lock(store: CountingStore) -> None:
    seed, manager = wrap(counter_app, store)
    seed.get("/")
    sid = seed.cookie() or ""

    def broken(environ: Any, start_response: Any) -> Iterable[bytes]:
        get_session(environ)["n"] = 99
        return []  # forgot start_response

    browser = Browser(SessionMiddleware(broken, manager))
    browser.send_cookie(sid)
    with pytest.raises(Exception):  # the server's complaint, whatever it is
        browser.get("/")
    assert lock_free(store, ids.storage_key(sid))
    assert seed.get("/").get_data() == b"2"  # the 99 was never saved
