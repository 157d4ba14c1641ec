"""The Django session engine, driven through django.test.Client and examples/django_app.

Django's settings are process-wide, so the cases run in a child pytest process
(``test_django_cases_in_subprocess``); in the parent they are collected but skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")

ROOT = Path(__file__).resolve().parents[2]
INPROC = os.environ.get("COATCHECK_DJANGO_INPROC") == "1"


def test_django_cases_in_subprocess(tmp_path: Path) -> None:
    if INPROC:
        pytest.skip("this is the child process")
    env = {**os.environ, "COATCHECK_DJANGO_INPROC": "1", "COATCHECK_TEST_DIR": str(tmp_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__)), "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(run.stdout[-5000:], run.stderr[-2000:])
    assert run.returncode == 0, run.stdout[-5000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


def test_example_project_passes_django_checks() -> None:
    if INPROC:
        pytest.skip("runs in the parent process")
    run = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT / "examples" / "django_app",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "no issues" in run.stdout


inproc = pytest.mark.skipif(not INPROC, reason="runs in the child process")

if INPROC:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.web.djangoapp.settings"
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import override_settings

    from coatcheck import ids
    from coatcheck.django import manager
    from coatcheck.errors import LockTimeout
    from tests.web.djangoapp.counting import CountingStore

    call_command("migrate", verbosity=0, interactive=False)
    User.objects.create_user("ada", password="lovelace")
    STORE = CountingStore(str(Path(os.environ["COATCHECK_TEST_DIR"]) / "sessions.db"))
    manager().store = STORE


def sid_of(response: Any) -> str | None:
    morsel = response.cookies.get("sessionid")
    return None if morsel is None else str(morsel.value)


def login(client: Any) -> Any:
    return client.post("/login", {"username": "ada", "password": "lovelace"})


@inproc
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


@inproc
def test_untouched_session_costs_nothing() -> None:
    client = Client()
    client.get("/")
    STORE.calls.clear()
    response = client.get("/health")
    assert response.content == b"ok"
    assert STORE.calls == []
    assert "sessionid" not in response.cookies
    assert not response.has_header("Vary")


@inproc
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


@inproc
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


@inproc
def test_read_only_view_leaves_store_untouched() -> None:
    client = Client()
    login(client)
    STORE.calls.clear()
    response = client.get("/whoami")
    assert response.json() == {"user": "ada"}
    assert STORE.calls == ["read"]
    assert "sessionid" not in response.cookies


@inproc
def test_read_without_change_releases_the_lock() -> None:
    client = Client()
    client.get("/")
    STORE.calls.clear()
    assert client.get("/peek").content == b"1"
    assert STORE.calls[0] == "read" and STORE.calls[-1] in ("release", "update_timestamp")
    assert "write" not in STORE.calls
    manager().start(client.cookies["sessionid"].value).abort()  # not locked any more


@inproc
def test_5xx_is_not_saved_and_lock_is_released() -> None:
    client = Client()
    client.get("/")
    assert client.get("/boom").status_code == 500
    check = manager().start(client.cookies["sessionid"].value)
    assert "broken" not in check and check["visits"] == 1
    check.abort()


@inproc
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


@inproc
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


@inproc
def test_test_client_login_and_clearsessions() -> None:
    client = Client()
    client.force_login(User.objects.get(username="ada"))
    assert b"Hello ada" in client.get("/").content
    STORE.calls.clear()
    call_command("clearsessions")
    assert STORE.calls == ["gc"]


@inproc
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


@inproc
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


@inproc
def test_async_view_api() -> None:
    client = Client()
    first = client.get("/async")
    assert first.content == b"1"
    assert client.get("/async").content == b"2"
    cycled = client.get("/async?cycle=1")
    assert cycled.content == b"3" and sid_of(cycled) != sid_of(first)
    assert client.get("/async").content == b"4"
