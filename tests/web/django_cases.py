"""The Django session engine's cases, driven through django.test.Client.

Django's settings are process-wide, so this module runs in a child pytest process started by
tests/web/test_django.py (its name keeps the parent's collection away from it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import django
import pytest

if "COATCHECK_TEST_DIR" not in os.environ:  # pragma: no cover - a wrong way to run it
    raise RuntimeError("run through tests/web/test_django.py, which sets up a child process")

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.web.djangoapp.settings"
django.setup()

from django.contrib.auth.models import User  # noqa: E402  (needs django.setup() first)
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from coatcheck import ids  # noqa: E402
from coatcheck.django import manager  # noqa: E402
from coatcheck.errors import LockTimeout  # noqa: E402
from tests.web.djangoapp.counting import CountingStore  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
User.objects.create_user("ada", password="lovelace")
STORE = CountingStore(str(Path(os.environ["COATCHECK_TEST_DIR"]) / "sessions.db"))
manager().store = STORE


def sid_of(response: Any) -> str | None:
    morsel = response.cookies.get("sessionid")
    return None if morsel is None else str(morsel.value)


def login(client: Any) -> Any:
    return client.post("/login", {"username": "ada", "password": "lovelace"})


def test_set_get_strict_ids() -> None:
    client = Client()
    first = client.get("/")
    assert b"visits: 1" in first.content
    sid = sid_of(first)
    assert sid and ids.is_well_formed(sid)  # Django sees and sends the coatcheck id
    assert STORE.validate_id(ids.storage_key(sid))
    assert b"visits: 2" in client.get("/").content
    assert "Cookie" in first["Vary"] and "no-store" in first["Cache-Control"]
    # a well-formed id the server never issued is not adopted
    stranger = Client()
    forged = ids.new_id()
    stranger.cookies["sessionid"] = forged
    response = stranger.get("/")
    assert b"visits: 1" in response.content and sid_of(response) not in (None, forged)


def test_untouched_session_costs_nothing() -> None:
    client = Client()
    client.get("/")
    STORE.calls.clear()
    response = client.get("/health")
    assert response.content == b"ok"
    assert STORE.calls == []
    assert "sessionid" not in response.cookies
    assert not response.has_header("Vary")


def test_login_cycles_key_and_messages_work() -> None:
    client = Client()
    before = sid_of(client.get("/"))
    response = login(client)
    after = sid_of(response)
    assert response.status_code == 302
    assert before and after and before != after
    assert not STORE.validate_id(ids.storage_key(before))
    page = client.get("/").content
    assert b"Hello ada" in page and b"<li>Welcome, ada</li>" in page
    assert b"Welcome" not in client.get("/").content  # a message is shown once
    replay = Client()
    replay.cookies["sessionid"] = before
    assert b"Hello nobody" in replay.get("/").content


def test_logout_destroys_server_side_and_expires_cookie() -> None:
    client = Client()
    login(client)
    sid = client.cookies["sessionid"].value
    response = client.post("/logout")
    morsel = response.cookies["sessionid"]
    assert morsel.value == "" and str(morsel["max-age"]) == "0"
    assert not STORE.validate_id(ids.storage_key(sid))
    replay = Client()
    replay.cookies["sessionid"] = sid
    assert b"Hello nobody" in replay.get("/").content


def test_read_only_view_leaves_store_untouched() -> None:
    client = Client()
    login(client)
    STORE.calls.clear()
    response = client.get("/whoami")
    assert response.json() == {"user": "ada"}
    assert STORE.calls == ["read"]
    assert "sessionid" not in response.cookies


def test_read_without_change_releases_the_lock() -> None:
    client = Client()
    client.get("/")
    STORE.calls.clear()
    assert client.get("/peek").content == b"1"
    assert STORE.calls[0] == "read" and STORE.calls[-1] in ("release", "update_timestamp")
    assert "write" not in STORE.calls
    manager().start(client.cookies["sessionid"].value).abort()  # not locked any more


def test_5xx_is_not_saved_and_lock_is_released() -> None:
    client = Client()
    client.get("/")
    assert client.get("/boom").status_code == 500
    check = manager().start(client.cookies["sessionid"].value)
    assert "broken" not in check and check["visits"] == 1
    check.abort()


def test_save_on_error_saves_a_5xx() -> None:
    from django.conf import settings

    conf = {**settings.COATCHECK, "WEB": {"save_on_error": True}}
    with override_settings(COATCHECK=conf):
        client = Client()
        client.get("/")
        assert client.get("/boom").status_code == 500
        check = manager().start(client.cookies["sessionid"].value)
        assert check["broken"] is True  # saved despite the 500, as configured
        check.abort()


def test_lock_timeout_is_503_and_conflict_409() -> None:
    client = Client()
    client.get("/")
    holder = manager().start(client.cookies["sessionid"].value)
    try:
        busy = client.get("/")
        assert busy.status_code == 503 and busy.has_header("Retry-After")
    finally:
        holder.abort()
    assert client.get("/race").status_code == 409
    with pytest.raises(LockTimeout):  # the error type users can catch outside a request
        other = manager().start(client.cookies["sessionid"].value)
        try:
            manager().start(client.cookies["sessionid"].value)
        finally:
            other.abort()


def test_djangos_own_middleware_still_releases_locks() -> None:
    middleware = [
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]
    with override_settings(MIDDLEWARE=middleware):
        client = Client()
        assert b"visits: 1" in client.get("/").content
        assert client.get("/peek").content == b"1"  # read only: Django never calls save()
        assert b"visits: 2" in client.get("/").content  # would be a 503 if the lock leaked
        login(client)
        assert b"Hello ada" in client.get("/").content


def test_test_client_login_and_clearsessions() -> None:
    client = Client()
    client.force_login(User.objects.get(username="ada"))
    assert b"Hello ada" in client.get("/").content
    STORE.calls.clear()
    call_command("clearsessions")
    assert STORE.calls == ["gc"]


def test_set_expiry_makes_a_remembered_session() -> None:
    from django.contrib.sessions.backends.base import SessionBase

    from coatcheck.django import SessionStore

    session = SessionStore()
    assert isinstance(session, SessionBase)
    session["user"] = "ada"
    session.set_expiry(3600)
    session.save()
    assert session.session_key and ids.is_well_formed(session.session_key)
    again = SessionStore(session.session_key)
    assert again["user"] == "ada" and again.get_expiry_age() == 3600
    assert again.core.idle_timeout == 3600 and again.core.remembered
    again.save()
    assert SessionStore().exists(session.session_key)
    again.delete(session.session_key)
    assert not SessionStore().exists(session.session_key)


def test_migrate_from_djangos_db_engine() -> None:
    from django.conf import settings
    from django.contrib.sessions.backends.db import SessionStore as OldStore

    old = OldStore()
    old["visits"] = 41
    old.save()
    assert old.session_key and not ids.is_well_formed(old.session_key)
    conf = {**settings.COATCHECK, "MIGRATE_FROM": "django.contrib.sessions.backends.db"}
    with override_settings(COATCHECK=conf):
        client = Client()
        client.cookies["sessionid"] = old.session_key
        response = client.get("/")
        assert b"visits: 42" in response.content
        new = sid_of(response)
        assert new and ids.is_well_formed(new)  # a new coatcheck id, the old key not adopted
        assert not OldStore().exists(old.session_key)  # the old session is gone
        assert b"visits: 43" in client.get("/").content


def test_async_view_api() -> None:
    client = Client()
    first = client.get("/async")
    assert first.content == b"1"
    assert client.get("/async").content == b"2"
    cycled = client.get("/async?cycle=1")
    assert cycled.content == b"3" and sid_of(cycled) != sid_of(first)
    assert client.get("/async").content == b"4"


def test_asgi_middleware_under_djangos_asgi_handler() -> None:
    """coatcheck's ASGI middleware wraps Django's own ASGI handler: views see scope["session"]."""
    from django.core.asgi import get_asgi_application
    from starlette.testclient import TestClient

    from coatcheck.web.asgi import SessionMiddleware
    from coatcheck.web.common import WebOptions

    url = f"sqlite:///{Path(os.environ['COATCHECK_TEST_DIR']) / 'asgi-sessions.db'}"
    app = SessionMiddleware(get_asgi_application(), url, options=WebOptions(autoload=True))
    # no `with`: Django's handler refuses ASGI lifespan events, which uvicorn tolerates
    client = TestClient(app, base_url="https://testserver")
    first = client.get("/scope-counter")
    assert first.text == "1" and "session" in first.cookies
    assert "Cookie" in first.headers["vary"]
    assert client.get("/scope-counter").text == "2"  # loaded from the store, then saved
    untouched = client.get("/health")
    assert untouched.text == "ok" and "set-cookie" not in untouched.headers
    stranger = TestClient(app, base_url="https://testserver")
    stranger.cookies.set("session", ids.new_id())  # well-formed, never issued: not adopted
    assert stranger.get("/scope-counter").text == "1"


# --- Django habits (issue: drop-in as Django's users expect) ------------------------------


def stored(sid: str) -> dict[str, Any] | None:
    """The stored data of a session, or None when the store has none (no lock taken)."""
    s = manager().start(sid, read_only=True)
    return None if s.is_new else dict(s.data)


def test_save_gives_a_stable_key_and_sends_the_cookie() -> None:
    client = Client()
    first = client.get("/key")
    key = first.content.decode()
    assert ids.is_well_formed(key) and sid_of(first) == key
    assert stored(key) == {}  # an empty session, stored so its key is stable
    assert client.get("/key").content.decode() == key


def test_changes_after_save_are_saved_at_the_end() -> None:
    client = Client()
    response = client.get("/save-then-change")
    key = response.content.decode()
    assert sid_of(response) == key
    assert stored(key) == {"a": 1, "b": 2}
    manager().start(key).abort()  # the lock retaken after save() was released


def test_set_expiry_agrees_with_the_cookie_and_the_server() -> None:
    idle = manager().config.idle_timeout
    client = Client()
    plain = client.get("/expiry?value=none")
    assert plain.json()["age"] == idle
    assert str(plain.cookies["sessionid"]["max-age"]) == str(int(idle))
    sid = sid_of(plain)
    assert sid is not None
    ten = client.get("/expiry?value=600")
    assert ten.json() == {"age": 600, "n": 2}
    assert str(ten.cookies["sessionid"]["max-age"]) == "600"
    assert manager().start(sid, read_only=True).idle_timeout == 600  # enforced, not only said
    browser = client.get("/expiry?value=0")
    assert browser.json()["n"] == 3 and browser.cookies["sessionid"]["max-age"] == ""
    dated = client.get("/expiry?value=date")
    assert 3590 <= dated.json()["age"] <= 3600


@pytest.mark.parametrize("value", ["-10", "past-date"])
def test_set_expiry_in_the_past_ends_the_session_now(value: str) -> None:
    client = Client()
    sid = sid_of(client.get("/expiry?value=none"))
    assert sid is not None and stored(sid) == {"n": 1}
    response = client.get(f"/expiry?value={value}")
    assert response.status_code == 200
    assert stored(sid) is None  # deleted at once: nothing left for clearsessions to find
    morsel = response.cookies["sessionid"]
    assert morsel.value == "" and str(morsel["max-age"]) == "0"
    assert client.get("/expiry?value=none").json()["n"] == 1  # a fresh session


@pytest.mark.parametrize("route", ["/logged-out-elsewhere", "/logged-out-elsewhere-optimistic"])
def test_a_logout_elsewhere_interrupts_the_open_request(route: str) -> None:
    client = Client()
    sid = sid_of(client.get("/"))
    assert sid is not None
    response = client.get(route)
    assert response.status_code == 400  # Django's SessionInterrupted, as its own engines do
    assert stored(sid) is None  # never recreated under the old id


def test_the_apps_cache_control_is_kept() -> None:
    client = Client()
    client.get("/")
    response = client.get("/cached")
    assert response["Cache-Control"] == "private, max-age=60"
    assert "Cookie" in response["Vary"]


def test_app_mistakes_propagate_and_nothing_is_saved() -> None:
    from coatcheck.errors import EncodeError, SessionClosed

    client = Client()
    sid = sid_of(client.get("/"))
    assert sid is not None
    with pytest.raises(EncodeError):
        client.get("/not-json")
    with pytest.raises(SessionClosed):
        client.get("/write-read-only")
    assert stored(sid) == {"visits": 1}
    manager().start(sid).abort()  # no lock left behind
    quiet = Client(raise_request_exception=False)
    quiet.cookies["sessionid"] = sid
    assert quiet.get("/not-json").status_code == 500


def test_a_skipped_view_has_no_session() -> None:
    from coatcheck.errors import SessionNotLoaded

    client = Client()
    client.get("/")
    STORE.calls.clear()
    response = client.get("/skipped")
    assert response.content == b"skipped" and STORE.calls == []
    assert "sessionid" not in response.cookies
    with pytest.raises(SessionNotLoaded):
        client.get("/skipped?use=1")


@pytest.mark.parametrize("flush", [False, True])
def test_async_session_api(flush: bool) -> None:
    client = Client()
    sid = sid_of(client.get("/"))
    response = client.get("/async-api" + ("?flush=1" if flush else ""))
    new = sid_of(response)
    assert new is not None
    if flush:
        assert response.json() == {"items": {"after": True}, "age": manager().config.idle_timeout}
        assert new != sid and stored(str(sid)) is None
        assert stored(new) == {"after": True}
    else:
        items = {"visits": 1, "a": 1, "c": 3, "d": 4, "_session_expiry": 600}  # Django's key
        assert response.json() == {"items": items, "age": 600}
        assert stored(new) == items


def test_the_cookie_is_secure_unless_the_settings_say_otherwise() -> None:
    from unittest import mock

    from django.conf import settings

    from coatcheck.web.django_session import _config

    with override_settings(SESSION_COOKIE_SECURE=False):  # the user's choice
        assert _config(settings.COATCHECK).cookie_secure is False
    unset = mock.patch.object(
        settings, "is_overridden", lambda name: name != "SESSION_COOKIE_SECURE"
    )
    with override_settings(SESSION_COOKIE_SECURE=False), unset:  # Django's default only
        assert _config(settings.COATCHECK).cookie_secure is True
        assert "secure" in str(Client().get("/").cookies["sessionid"]).lower()


# --- the web conformance scenarios every adapter passes (tests/web/conformance.py) --------

from coatcheck import Client as CoatcheckClient  # noqa: E402
from tests.web.conformance import SCENARIOS, UA, Reply  # noqa: E402
from tests.web.conformance import migrate as conformance_migrate  # noqa: E402

DJANGO_DIFFERS = {
    "emptied_session": "Django's clear() keeps the session and its key, and flush() is the "
    "logout; the adapter keeps Django's meaning (Django's own test_empty_session_saved)",
}
"""Scenario -> why Django's adapter differs on purpose (also in docs/web/django.md)."""


class DjangoWeb:
    """Requests through django.test.Client, to the conformance routes under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.client = Client(raise_request_exception=False, HTTP_USER_AGENT=UA)
        self.manager = manager()
        self.prefix = prefix

    def request(self, method: str, path: str, cookie: str | None = None) -> Reply:
        self.client.cookies.clear()
        if cookie:
            self.client.cookies["session"] = cookie
        r = self.client.generic(method, self.prefix + path)
        return Reply(
            r.status_code,
            list(r.items()),
            r.content.decode(),
            [m.OutputString() for m in r.cookies.values()],
        )


@pytest.mark.parametrize("prefix", ["/conf", "/conf-async"])  # sync and async views
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_conformance_scenario(scenario: str, prefix: str, tmp_path: Path) -> None:
    conf = {
        "STORE": f"sqlite:///{tmp_path / 'conformance.db'}",
        "CONFIG": {"gc_probability": 0, "lock_wait": 0.2},
        "WEB": {"migrate": conformance_migrate},
    }
    cookie = {
        "SESSION_COOKIE_NAME": "session",
        "SESSION_COOKIE_SECURE": True,
        "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,  # a persistent cookie is resent as it slides
    }
    with override_settings(COATCHECK=conf, **cookie):
        web = DjangoWeb(prefix)
        if scenario not in DJANGO_DIFFERS:
            SCENARIOS[scenario](web)
            return
        # emptied_session, as Django defines it: kept, empty, under the same key
        sid = web.request("GET", "/count").sid()
        assert sid is not None
        cleared = web.request("POST", "/clear", sid)
        assert cleared.status == 200 and "max-age=0" not in str(cleared.session_cookie()).lower()
        kept = web.manager.start(sid, client=CoatcheckClient(user_agent=UA), read_only=True)
        assert not kept.is_new and dict(kept) == {}


def test_save_every_request_extends_an_unused_session() -> None:
    client = Client()
    sid = sid_of(client.get("/"))
    assert sid is not None
    before = manager().start(sid, read_only=True).expires_at
    STORE.calls.clear()
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        assert client.get("/health").content == b"ok"  # a view that never uses the session
    assert STORE.calls[0] == "read"
    assert set(STORE.calls) & {"write", "update_timestamp"}, STORE.calls
    assert manager().start(sid, read_only=True).expires_at >= before
    STORE.calls.clear()
    client.get("/health")  # without the setting: no store call at all
    assert STORE.calls == []


class RawCookieDjangoWeb(DjangoWeb):
    """DjangoWeb sending the Cookie header as given (django.test.Client's jar keeps one)."""

    def request(self, method: str, path: str, cookie: str | None = None) -> Reply:
        self.client.cookies.clear()
        extra = {"HTTP_COOKIE": f"session={cookie}"} if cookie else {}
        r = self.client.generic(method, self.prefix + path, **extra)
        return Reply(
            r.status_code,
            list(r.items()),
            r.content.decode(),
            [m.OutputString() for m in r.cookies.values()],
        )


@pytest.mark.parametrize("prefix", ["/conf", "/conf-async"])
def test_different_session_cookies_use_none_of_them(prefix: str, tmp_path: Path) -> None:
    from tests.web.cookie_tossing import duplicate_cookies_use_none

    conf = {"STORE": f"sqlite:///{tmp_path / 'tossing.db'}", "CONFIG": {"gc_probability": 0}}
    cookie = {"SESSION_COOKIE_NAME": "session", "SESSION_COOKIE_SECURE": True}
    with override_settings(COATCHECK=conf, **cookie):
        duplicate_cookies_use_none(RawCookieDjangoWeb(prefix))


def _cookie_check_ids(**overrides: Any) -> list[str]:
    from coatcheck.web.django_checks import check_session_cookie

    with override_settings(**overrides):
        return [message.id for message in check_session_cookie()]


def test_system_check_warns_about_a_session_cookie_without_secure_or_httponly() -> None:
    from unittest import mock

    from django.conf import settings

    safe = {"SESSION_COOKIE_SECURE": True, "SESSION_COOKIE_HTTPONLY": True}
    assert _cookie_check_ids(**safe) == []
    assert _cookie_check_ids(**{**safe, "SESSION_COOKIE_SECURE": False}) == ["coatcheck.W001"]
    assert _cookie_check_ids(**{**safe, "SESSION_COOKIE_HTTPONLY": False}) == ["coatcheck.W002"]
    plain = {"SESSION_COOKIE_SECURE": False, "SESSION_COOKIE_HTTPONLY": False}
    assert _cookie_check_ids(**plain) == ["coatcheck.W001", "coatcheck.W002"]
    insecure = {**settings.COATCHECK, "CONFIG": {"cookie_secure": False}}
    assert _cookie_check_ids(**safe, COATCHECK=insecure) == ["coatcheck.W001"]
    from coatcheck.web.django_checks import check_session_cookie

    unset = mock.patch.object(
        settings, "is_overridden", lambda name: name != "SESSION_COOKIE_SECURE"
    )
    with override_settings(SESSION_COOKIE_SECURE=False), unset:  # Django's default only
        assert check_session_cookie() == []  # coatcheck's cookie stays Secure


def test_system_check_follows_whichever_middleware_writes_the_cookie() -> None:
    django_mw = ["django.contrib.sessions.middleware.SessionMiddleware"]
    ours_unset = {"MIDDLEWARE": django_mw, "SESSION_COOKIE_HTTPONLY": True}
    # Django's middleware writes the cookie with Django's settings, its default not Secure
    assert _cookie_check_ids(**ours_unset, SESSION_COOKIE_SECURE=False) == ["coatcheck.W001"]
    unused = {"SESSION_ENGINE": "django.contrib.sessions.backends.db", "MIDDLEWARE": django_mw}
    assert _cookie_check_ids(**unused, SESSION_COOKIE_SECURE=False) == []  # not coatcheck's


def test_system_check_reports_a_bad_configuration() -> None:
    from django.conf import settings

    bad = {**settings.COATCHECK, "CONFIG": {"cookie_partitioned": True}}
    assert _cookie_check_ids(COATCHECK=bad) == ["coatcheck.E001"]


def test_system_check_is_registered_for_deployment() -> None:
    from django.core import checks

    insecure = {"SESSION_COOKIE_SECURE": False, "SESSION_COOKIE_HTTPONLY": True}
    with override_settings(**insecure):
        deploy = checks.run_checks(include_deployment_checks=True, tags=["security"])
        plain = checks.run_checks(tags=["security"])
    assert "coatcheck.W001" in [m.id for m in deploy]
    assert "coatcheck.W001" not in [m.id for m in plain]


def test_login_enters_the_user_index_and_logout_takes_it_out() -> None:
    ada = str(User.objects.get(username="ada").pk)
    manager().logout_user(ada)  # sessions other cases logged in
    laptop, phone = Client(), Client()
    login(laptop)
    login(phone)
    keys = {u.key for u in manager().user_sessions(ada)}
    assert keys == {ids.storage_key(c.cookies["sessionid"].value) for c in (laptop, phone)}
    phone.post("/logout")
    assert [u.key for u in manager().user_sessions(ada)] == [
        ids.storage_key(laptop.cookies["sessionid"].value)
    ]
    assert manager().logout_user(ada) == 1
    assert manager().user_sessions(ada) == []
    assert b"visits: 1" in laptop.get("/").content  # logged out everywhere: a fresh session
