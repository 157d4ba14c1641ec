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
    assert again.core._core.state.header.idle == 3600
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

    from coatcheck.web.asgi import CoatcheckMiddleware

    url = f"sqlite:///{Path(os.environ['COATCHECK_TEST_DIR']) / 'asgi-sessions.db'}"
    app = CoatcheckMiddleware(get_asgi_application(), store=url, autoload=True)
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
