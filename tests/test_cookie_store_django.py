"""cookie:// under the Django session engine, unchanged: the web conformance scenarios that
hold for a session kept in its cookie (tests/test_cookie_store_web.py says which) and a real
django.contrib.auth login and logout.

Django's settings are process-wide, so the cases run in a child pytest process of this same
file (``COATCHECK_COOKIE_DJANGO`` set), as tests/web/test_django.py does for its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")

CHILD = "COATCHECK_COOKIE_DJANGO"
KEYS_VARIABLE = "CC_DJANGO_COOKIE_KEYS"
PLUGINS_OFF = ["-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:randomly"]

if not os.environ.get(CHILD):

    def test_django_cases_in_subprocess(tmp_path: Path) -> None:
        from coatcheck.crypto import new_key

        root = Path(__file__).resolve().parents[1]
        env = {
            **os.environ,
            CHILD: "1",
            "COATCHECK_TEST_DIR": str(tmp_path),
            KEYS_VARIABLE: new_key(),
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        run = subprocess.run(
            [sys.executable, "-m", "pytest", __file__, "-q", *PLUGINS_OFF],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        print(run.stdout[-5000:], run.stderr[-2000:])
        assert run.returncode == 0, run.stdout[-5000:]
        assert " passed" in run.stdout and "failed" not in run.stdout
        assert "skipped" not in run.stdout

else:
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.web.djangoapp.settings"
    django.setup()

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import override_settings

    from coatcheck import Client as CoatcheckClient
    from coatcheck.django import manager
    from coatcheck.stores.cookie import CookieStore
    from tests.test_cookie_store_web import PLAIN, REVOKING
    from tests.web.conformance import SCENARIOS, UA, Reply
    from tests.web.conformance import migrate as conformance_migrate

    call_command("migrate", verbosity=0, interactive=False)
    User.objects.create_user("ada", password="lovelace")

    def store_url(tmp_path: Path, revoking: bool) -> str:
        url = f"cookie://?keys=env:{KEYS_VARIABLE}"
        if revoking:
            url += "&revocations=" + f"sqlite:///{tmp_path / 'revoked.db'}".replace("/", "%2F")
        return url

    def settings_for(tmp_path: Path, revoking: bool) -> dict[str, Any]:
        conf = {
            "STORE": store_url(tmp_path, revoking),
            "CONFIG": {"gc_probability": 0},
            "WEB": {"migrate": conformance_migrate},
        }
        return {
            "COATCHECK": conf,
            "SESSION_COOKIE_NAME": "session",
            "SESSION_COOKIE_SECURE": True,
            "SESSION_EXPIRE_AT_BROWSER_CLOSE": True,
        }

    class DjangoWeb:
        """Requests through django.test.Client to the conformance routes under ``prefix``."""

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

    # Django's clear() keeps the session and its key (tests/web/django_cases.py)
    DJANGO_DIFFERS = {"emptied_session"}

    @pytest.mark.parametrize("revoking", [False, True], ids=["plain", "revocations"])
    @pytest.mark.parametrize("prefix", ["/conf", "/conf-async"])
    def test_conformance_scenarios(prefix: str, revoking: bool, tmp_path: Path) -> None:
        with override_settings(**settings_for(tmp_path, revoking)):
            web = DjangoWeb(prefix)
            assert isinstance(web.manager.store, CookieStore)
            for scenario in REVOKING if revoking else PLAIN:
                if scenario not in DJANGO_DIFFERS:
                    SCENARIOS[scenario](web)

    @pytest.mark.parametrize("prefix", ["/conf", "/conf-async"])
    def test_every_write_resends_the_cookie(prefix: str, tmp_path: Path) -> None:
        with override_settings(**settings_for(tmp_path, False)):
            web = DjangoWeb(prefix)
            first = web.request("GET", "/count").sid()
            assert first is not None
            second = web.request("GET", "/count", first)
            assert second.body == "2" and second.sid() not in (None, first)
            assert web.request("GET", "/peek", second.sid()).session_cookie() is None

    def test_login_and_logout_then_replay_is_refused(tmp_path: Path) -> None:
        with override_settings(**{**settings_for(tmp_path, True), "SESSION_COOKIE_NAME": "s"}):
            client = Client(HTTP_USER_AGENT=UA)
            assert b"visits: 1" in client.get("/").content
            before = client.cookies["s"].value
            response = client.post("/login", {"username": "ada", "password": "lovelace"})
            assert response.status_code == 302
            after = client.cookies["s"].value
            assert after != before
            page = client.get("/").content
            assert b"Hello ada" in page and b"<li>Welcome, ada</li>" in page
            logged_in = client.cookies["s"].value
            out = client.post("/logout")
            assert out.cookies["s"].value == "" and str(out.cookies["s"]["max-age"]) == "0"
            for old in (before, after, logged_in):  # copies kept by an attacker
                replay = Client(HTTP_USER_AGENT=UA)
                replay.cookies["s"] = old
                assert b"Hello nobody" in replay.get("/").content

    def test_save_then_change_in_one_request(tmp_path: Path) -> None:
        with override_settings(**settings_for(tmp_path, False)):
            client = Client(HTTP_USER_AGENT=UA)
            response = client.get("/save-then-change")
            assert response.status_code == 200
            cookie = client.cookies["session"].value
            s = manager().start(cookie, client=CoatcheckClient(user_agent=UA), read_only=True)
            assert dict(s) == {"a": 1, "b": 2}
