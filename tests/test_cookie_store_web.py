"""cookie:// under Starlette, FastAPI, plain WSGI and Flask, unchanged adapters.

The apps are the web conformance suite's own (tests/web/test_web_conformance.py), built on
cookie stores instead of SQLite ones; the scenarios of tests/web/conformance.py that hold
for a session kept in its cookie run as they are, and those that cannot hold (:data:`DIFFER`)
have cookie:// counterparts here. Django runs in tests/test_cookie_store_django.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.web.test_web_conformance as apps
from coatcheck import Client, SessionManager
from coatcheck.crypto import new_key
from coatcheck.errors import CookieTooLarge
from coatcheck.stores.cookie import AsyncCookieStore, CookieStore
from coatcheck.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from tests.web.conformance import LEGACY, SCENARIOS, UA, Web

KEYS = [new_key()]

EVERYWHERE = [
    "lazy_load",
    "read_only",
    "app_bugs_propagate",
    "cache_headers",
    "failure_discards_changes",
]
PLAIN = [*EVERYWHERE, "regenerate_with_grace"]
"""The scenarios that hold without a revocation list."""
REVOKING = [*EVERYWHERE, "destroy", "emptied_session"]
"""The scenarios that hold with a revocation list (SQLite here)."""
DIFFER = {
    "cookie_flags": "the cookie carries the session, so every write sends it again",
    "early_release": "the write sends a new cookie; the old one still holds the old data",
    "errors_become_statuses": "no locks client-side: a second request never waits",
    "migration": "the new cookie is the sealed session, not an id",
    "regenerate_with_grace": "with a revocation list the old cookie is refused at once: no "
    "cookie can forward to the new id",
    "destroy": "without a revocation list a copy of the old cookie opens until it expires",
    "emptied_session": "as destroy",
}
"""Scenario -> why it differs for cookie://; the counterparts below check what holds."""


@pytest.fixture(
    params=[(app, revoking) for app in sorted(apps.APPS) for revoking in (False, True)],
    ids=lambda p: f"{p[0]}-{'revocations' if p[1] else 'plain'}",
)
def web(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Web, bool]]:
    """A conformance app on cookie://, revoking into an SQLite list or not."""
    name, revoking = request.param

    def sync_store(db: str) -> CookieStore:
        return CookieStore(KEYS, revocations=SQLiteStore(db) if revoking else None)

    def async_store(db: str) -> AsyncCookieStore:
        return AsyncCookieStore(KEYS, revocations=AsyncSQLiteStore(db) if revoking else None)

    monkeypatch.setattr(apps, "SQLiteStore", sync_store)
    monkeypatch.setattr(apps, "AsyncSQLiteStore", async_store)
    db = str(tmp_path / "revoked.db")
    check = SessionManager(sync_store(db), apps.CONFIG)
    factory, driver = apps.APPS[name]
    yield driver(factory(db, check), check), revoking
    check.store.close()


def stored(web: Web, cookie: str) -> dict[str, Any] | None:
    s = web.manager.start(cookie, client=Client(user_agent=UA), read_only=True)
    return None if s.is_new else dict(s)


def test_conformance_scenarios(web: tuple[Web, bool]) -> None:
    app, revoking = web
    for scenario in REVOKING if revoking else PLAIN:
        SCENARIOS[scenario](app)
    assert set(SCENARIOS) == set(EVERYWHERE) | set(DIFFER)  # a new scenario is considered


def test_round_trip_and_every_write_resends_the_cookie(web: tuple[Web, bool]) -> None:
    app, _ = web
    first = app.request("GET", "/count")
    line = first.session_cookie()
    assert line is not None and first.body == "1"
    attrs = {a.strip().split("=")[0].lower() for a in line.split(";")[1:]}
    assert {"path", "secure", "httponly", "samesite"} <= attrs
    cookie = first.sid()
    assert cookie is not None and len(line) <= 4096
    second = app.request("GET", "/count", cookie)
    assert second.body == "2"
    resent = second.sid()
    assert resent is not None and resent != cookie and stored(app, resent) == {"n": 2}
    # a request that only reads sends nothing: the browser keeps its cookie
    peek = app.request("GET", "/peek", resent)
    assert peek.body == "2" and peek.session_cookie() is None
    untouched = app.request("GET", "/none", resent)
    assert untouched.session_cookie() is None


def test_early_write_close_sends_the_written_session(web: tuple[Web, bool]) -> None:
    app, _ = web
    cookie = app.request("GET", "/count").sid()
    assert cookie is not None
    reply = app.request("GET", "/early", cookie)
    assert reply.body == "free"  # no lock to hold
    written = reply.sid()
    assert written is not None and stored(app, written) == {"n": 2}


def test_concurrent_requests_never_wait(web: tuple[Web, bool]) -> None:
    app, _ = web
    cookie = app.request("GET", "/count").sid()
    assert cookie is not None
    holder = app.manager.start(cookie, client=Client(user_agent=UA))  # a lock, elsewhere
    try:
        busy = app.request("GET", "/count", cookie)
    finally:
        holder.abort()
    assert busy.status == 200 and busy.body == "2"  # last write wins, as with any cookie


def test_migration_gives_a_sealed_cookie(web: tuple[Web, bool]) -> None:
    app, _ = web
    reply = app.request("GET", "/count", LEGACY)
    assert reply.body == "42"
    cookie = reply.sid()
    assert cookie is not None and cookie != LEGACY and stored(app, cookie) == {"n": 42}


def test_login_then_logout_then_replay(web: tuple[Web, bool]) -> None:
    app, revoking = web
    before = app.request("GET", "/count").sid()
    assert before is not None
    login = app.request("POST", "/login", before)
    after = login.sid()
    assert after is not None and after != before
    assert stored(app, after) == {"n": 1, "user": "ada"}
    out = app.request("POST", "/logout", after)
    line = out.session_cookie()
    assert line is not None and "max-age=0" in line.lower()
    replay = app.request("GET", "/count", after)
    # with a revocation list the logged-out cookie is refused; without, it opens until it
    # expires (the weakness every cookie session has, documented in docs/stores/cookie.md)
    assert replay.body == ("1" if revoking else "2")
    old = app.request("GET", "/count", before)
    assert old.body == ("1" if revoking else "2")


def test_tampered_and_foreign_cookies_give_a_fresh_session(web: tuple[Web, bool]) -> None:
    app, _ = web
    cookie = app.request("GET", "/count").sid()
    assert cookie is not None
    raw = bytearray(base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4)))
    raw[len(raw) // 2] ^= 0x80
    tampered = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    foreign = CookieStore([new_key()])
    other = SessionManager(foreign, apps.CONFIG).begin()
    other["n"] = 100
    other.write_close()
    action = other.cookie()
    assert action is not None and action.value is not None
    for value in (tampered, cookie[:-10], action.value, "x" * 64):
        reply = app.request("GET", "/count", value)
        assert reply.status == 200 and reply.body == "1", value


def almost_full(web: Web) -> str:
    """A cookie whose session is a few bytes short of the 4096-byte limit."""
    low, high = 0, 4096
    best = ""
    while low + 1 < high:
        mid = (low + high) // 2
        s = web.manager.begin(client=Client(user_agent=UA))
        s["pad"] = "x" * mid
        try:
            s.write_close()
        except CookieTooLarge:
            high = mid
            continue
        low = mid
        action = s.cookie()
        assert action is not None and action.value is not None
        best = action.value
    return best


def test_a_session_too_large_for_its_cookie_is_a_server_error_not_a_broken_cookie(
    web: tuple[Web, bool],
) -> None:
    app, _ = web
    full = almost_full(app)
    reply = app.request("GET", "/count", full)  # n = 1 does not fit any more
    assert reply.status == 500 and reply.session_cookie() is None
    assert stored(app, full) is not None  # the browser's cookie still holds its session
