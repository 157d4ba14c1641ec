"""The demo web app (coatcheck.demo), called as a WSGI app and through its threaded server."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from coatcheck import Client, Config, ConfigError, SessionManager, open_store
from coatcheck.demo import demo_config, make_app, make_demo_server, serve
from coatcheck.demo.app import public_store_url
from coatcheck.demo.server import cookie_secure, is_loopback


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Browser:
    """Calls the WSGI app directly and keeps cookies as a browser would (by name)."""

    def __init__(self, app: Any, user_agent: str = "test") -> None:
        self.app = app
        self.user_agent = user_agent
        self.cookies: dict[str, str] = {}

    def call(
        self, path: str = "/", method: str = "GET", form: dict[str, str] | None = None, **env: Any
    ) -> tuple[str, list[tuple[str, str]], str]:
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]]) -> None:
            seen["status"], seen["headers"] = status, headers

        path, _, query = path.partition("?")
        body = urlencode(form or {}).encode()
        environ = {
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": method,
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_USER_AGENT": self.user_agent,
            "REMOTE_ADDR": "127.0.0.1",
            **env,
        }
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        out = b"".join(self.app(environ, start_response)).decode()
        for name, value in seen["headers"]:
            if name == "Set-Cookie":
                key, _, rest = value.partition("=")
                val = rest.split(";")[0]
                if "Max-Age=0" in value or not val:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
        return seen["status"], seen["headers"], out

    def page(self, path: str = "/") -> str:
        status, _, page = self.call(path)
        assert status == "200 OK"
        return page

    def post(self, path: str, **form: str) -> tuple[str, list[tuple[str, str]], str]:
        token = re.search(r'name="csrf" value="([^"]+)"', self.page())
        assert token
        return self.call(path, "POST", {"csrf": token.group(1), **form})


def session_set_cookie(headers: list[tuple[str, str]]) -> str | None:
    found = [v for k, v in headers if k == "Set-Cookie" and v.startswith("session=")]
    return found[0] if found else None


def flag(page: str, name: str) -> bool:
    m = re.search(rf'id="{name}">(true|false)<', page)
    assert m, name
    return m.group(1) == "true"


def masked(page: str) -> str:
    m = re.search(r'id="sid">([^<]+)<', page)
    assert m
    return m.group(1)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/demo.db"


def test_counts_visits_and_regenerates(url: str) -> None:
    b = Browser(make_app(url))
    status, headers, page = b.call()
    assert status == "200 OK" and 'id="visits">1<' in page
    cookie = session_set_cookie(headers)
    assert cookie and "Secure" in cookie and "HttpOnly" in cookie
    assert ("Vary", "Cookie") in headers
    _, headers, page = b.call()
    assert 'id="visits">2<' in page and session_set_cookie(headers) is None
    old = dict(b.cookies)
    status, headers, _ = b.post("/regenerate")
    assert status == "303 See Other" and session_set_cookie(headers)
    assert b.cookies["session"] != old["session"]
    page = b.page()
    assert 'id="visits">4<' in page and 'id="id-changed"' in page
    stale = Browser(b.app)
    stale.cookies = old  # the old id is dead
    page = stale.page()
    assert 'id="visits">1<' in page and "This is a new session." in page


def test_the_page_never_shows_the_id_and_every_cookie_is_httponly(url: str) -> None:
    b = Browser(make_app(url))
    _, headers, page = b.call()
    sid = b.cookies["session"]
    assert sid not in page and sid[:12] not in page
    assert masked(page) == sid[:4] + "…"
    cookies = [v for k, v in headers if k == "Set-Cookie"]
    assert cookies and all("HttpOnly" in c for c in cookies)
    csp = dict(headers)["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp


def test_escapes_what_it_shows(url: str) -> None:
    b = Browser(make_app(url))
    b.post("/var", name="<b>", value="<script>x</script>", action="set")
    page = b.page()
    assert "<script>x" not in page and "&lt;script&gt;x" in page and "&lt;b&gt;" in page


def test_set_and_get_a_variable_and_keep_the_demo_keys(url: str) -> None:
    b = Browser(make_app(url))
    b.post("/var", name="colour", value="blue", action="set")
    status, headers, _ = b.post("/var", name="colour", action="get")
    assert status == "303 See Other"
    page = b.page(dict(headers)["Location"])
    assert "id='got'>&quot;blue&quot;<" in page
    status, headers, _ = b.post("/var", name="_csrf", value="mine", action="set")
    assert "done=badname" in dict(headers)["Location"]
    b.post("/var", name="colour", action="unset")
    assert "colour" not in b.page()


def test_survives_a_visitor_setting_visits_to_text(url: str) -> None:
    b = Browser(make_app(url))
    b.post("/var", name="visits", value="abc", action="set")
    assert 'id="visits">1<' in b.page()


def test_forms_and_the_burst_endpoint_need_the_csrf_token(url: str) -> None:
    app = make_app(url)
    b = Browser(app)
    b.post("/var", name="x", value="1", action="set")
    status, _, page = b.call("/var", "POST", {"name": "x", "value": "2", "csrf": "forged"})
    assert status == "403 Forbidden" and "CSRF" in page and "Nothing was changed" in page
    assert "(pid " in page  # every page names the server
    other = Browser(app)
    other.page()
    token = re.search(r'name="csrf" value="([^"]+)"', other.page())
    assert token  # another session's valid token is no good here
    status, _, _ = b.call("/destroy", "POST", {"csrf": token.group(1)})
    assert status == "403 Forbidden"
    status, _, body = b.call("/burst/hit?mode=exclusive", "POST")
    assert status == "403 Forbidden" and "CSRF" in json.loads(body)["error"]
    assert 'id="data"' in b.page() and '"1"' in b.page()  # x still 1, session alive


def test_destroy_deletes_the_cookie(url: str) -> None:
    b = Browser(make_app(url))
    _, headers, _ = b.post("/destroy")
    cookie = session_set_cookie(headers)
    assert cookie and "Max-Age=0" in cookie and "session" not in b.cookies


def test_bad_hash_flags_the_kept_session_until_the_tag_is_switched_back(url: str) -> None:
    b = Browser(make_app(url))
    b.post("/var", name="x", value="kept", action="set")
    before = masked(b.page())
    b.post("/badhash")
    page = b.page()
    assert flag(page, "is_bad_hash") and 'id="bad-hash"' in page
    assert masked(page) == before and "&quot;kept&quot;" in page  # policy flag: kept
    b.post("/badhash")
    assert not flag(b.page(), "is_bad_hash")


def test_expired_session_comes_back_with_unexpire(url: str) -> None:
    clock = Clock()
    b = Browser(make_app(url, demo_config(idle=2), clock=clock))
    b.post("/var", name="x", value="precious", action="set")
    old = b.cookies["session"]
    clock.now += 3
    status, headers, page = b.call()
    assert status == "200 OK" and 'id="unexpire"' in page and "expired" in page
    assert session_set_cookie(headers) is None and b.cookies["session"] == old
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    status, _, _ = b.call("/unexpire", "POST", {"csrf": "wrong"})
    assert status == "403 Forbidden"
    status, headers, _ = b.call("/unexpire", "POST", {"csrf": token.group(1)})
    assert status == "303 See Other" and b.cookies["session"] != old
    page = b.page("/?done=unexpired")
    assert "&quot;precious&quot;" in page and "data is back" in page
    assert not flag(page, "is_expired") and 'id="id-changed"' in page


def test_an_expired_session_can_be_replaced_by_a_fresh_one(url: str) -> None:
    clock = Clock()
    b = Browser(make_app(url, demo_config(idle=2), clock=clock))
    b.post("/var", name="x", value="old", action="set")
    clock.now += 3
    page = b.page()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token
    b.call("/fresh", "POST", {"csrf": token.group(1)})
    page = b.page()
    assert 'id="unexpire"' not in page and "&quot;old&quot;" not in page


def test_without_database_ttl_an_expired_session_is_just_replaced(url: str) -> None:
    clock = Clock()
    b = Browser(make_app(url, Config(idle_timeout=2), clock=clock))
    b.post("/var", name="x", value="gone", action="set")
    clock.now += 3
    page = b.page()
    assert flag(page, "is_expired") and "had expired; this is a new one" in page
    assert 'id="unexpire"' not in page and "&quot;gone&quot;" not in page


def test_login_regenerates_and_logout_everywhere_ends_the_other_browser(url: str) -> None:
    app = make_app(url)
    a, b = Browser(app, "Firefox"), Browser(app, "Chromium")
    before = a.cookies.get("session")
    a.post("/login", user="alice")
    page = a.page()
    assert re.search(r'id="user">alice<', page) and a.cookies["session"] != before
    b.post("/login", user="alice")
    page = b.page()
    assert page.count('class="user-session"') == 2 and "this one" in page
    _, headers, _ = a.post("/logout-everywhere")
    assert "done=everywhere&n=1" in dict(headers)["Location"]
    assert 'id="user">alice<' in a.page()
    page = b.page()
    assert 'id="user">—<' in page and 'id="login"' in page
    a.post("/logout")
    assert 'id="user">—<' in a.page()


def test_the_burst_endpoint_counts_in_every_mode(url: str) -> None:
    app = make_app(url, server_label="test")
    server = make_demo_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        b = Browser(app)
        token = re.search(r'data-csrf="([^"]+)"', b.page())
        assert token
        cookie = "; ".join(f"{k}={v}" for k, v in b.cookies.items())
        headers = {"Cookie": cookie, "User-Agent": "test", "X-CSRF-Token": token.group(1)}

        def counter() -> int:
            request = urllib.request.Request(base + "/burst/state", headers=headers)
            with urllib.request.urlopen(request) as r:
                return int(json.load(r)["counter"])

        def hit(mode: str) -> int:
            request = urllib.request.Request(
                f"{base}/burst/hit?mode={mode}", b"", headers=headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request) as r:
                    return int(r.status)
            except urllib.error.HTTPError as e:
                return e.code

        for mode in ("exclusive", "release", "optimistic"):
            before = counter()
            with ThreadPoolExecutor(6) as pool:
                codes = list(pool.map(hit, [mode] * 6))
            applied = counter() - before
            assert set(codes) <= {200, 409}, codes
            assert applied == codes.count(200)  # no lost update: each 200 shows
            if mode != "optimistic":
                assert codes == [200] * 6
    finally:
        server.shutdown()
        server.server_close()


def test_busy_lock_answers_a_friendly_503_page(url: str) -> None:
    app = make_app(url, Config(lock_wait=0))
    b = Browser(app)
    b.page()
    holder = SessionManager(open_store(url)).start(
        b.cookies["session"], client=Client("test demo-tag/a")
    )
    assert not holder.is_new
    status, headers, page = b.call()
    assert status == "503 Service Unavailable" and dict(headers)["Retry-After"] == "1"
    assert "The session is busy" in page and "<html" in page
    holder.abort()
    assert b.call()[0] == "200 OK"


def test_unreachable_store_answers_503_with_a_page_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("redis")
    app = make_app("redis://user:hunter2@127.0.0.1:1/0?connect_timeout=0.5")
    with caplog.at_level(logging.WARNING, logger="coatcheck.demo"):
        status, headers, page = Browser(app).call()
    assert status == "503 Service Unavailable" and "Retry-After" in dict(headers)
    assert "The session store is unavailable" in page and "StoreUnavailable" in page
    assert "hunter2" not in page and "redis://127.0.0.1:1/0" in page
    assert any("GET / failed: StoreUnavailable" in r.getMessage() for r in caplog.records)


def test_releases_the_lock_when_a_request_fails(url: str) -> None:
    app = make_app(url, Config(lock_wait=0))
    b = Browser(app)
    b.page()
    broken = {"PATH_INFO": "/var", "REQUEST_METHOD": "POST", "HTTP_USER_AGENT": "test"}
    broken["HTTP_COOKIE"] = f"session={b.cookies['session']}"
    with pytest.raises(KeyError):  # no wsgi.input: the app fails while holding the lock
        app(broken, lambda status, headers: None)
    status, _, page = b.call()  # not kept waiting for the failed request
    assert status == "200 OK" and 'id="visits">2<' in page


def test_unknown_paths_and_methods(url: str) -> None:
    b = Browser(make_app(url))
    assert b.call("/nope")[0] == "404 Not Found"
    assert b.call("/login")[0] == "405 Method Not Allowed"
    assert b.call("/burst/hit?mode=sideways", "POST")[0] == "400 Bad Request"


def test_two_servers_on_one_store_share_the_session(url: str) -> None:
    one = Browser(make_app(url, server_label="one:1"))
    one.post("/var", name="x", value="shared", action="set")
    two = Browser(make_app(url, server_label="two:2"))
    two.cookies = dict(one.cookies)
    page = two.page()
    assert "two:2 (pid " in page and "&quot;shared&quot;" in page


def test_secure_cookie_rule_for_plain_http() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    assert cookie_secure("127.0.0.1", None) and cookie_secure("192.0.2.1", False)
    assert not cookie_secure("192.0.2.1", True)
    with pytest.raises(ConfigError) as e:
        cookie_secure("0.0.0.0", None)
    assert "--plain-http" in str(e.value) and "\n" not in str(e.value)


def test_serve_refuses_plain_http_off_loopback_before_binding(url: str) -> None:
    with pytest.raises(ConfigError, match="--plain-http"):
        serve(url, "0.0.0.0", 0)


def test_plain_http_drops_secure(url: str) -> None:
    _, headers, _ = Browser(make_app(url, demo_config(secure=False))).call()
    cookies = [v for k, v in headers if k == "Set-Cookie"]
    assert cookies and not any("Secure" in c for c in cookies)


def test_a_port_in_use_is_one_clear_line() -> None:
    first = make_demo_server("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:\d+"):
            make_demo_server("127.0.0.1", first.server_port)
    finally:
        first.server_close()


def test_store_urls_are_shown_without_credentials() -> None:
    assert public_store_url("redis://u:pw@h:6379/0?x=1") == "redis://h:6379/0"
    assert public_store_url("sqlite:///a/b.db") == "sqlite:///a/b.db"
    assert public_store_url("memory://") == "memory://"
    assert public_store_url("postgresql://u:p@h/db?sslmode=x") == "postgresql://h/db"
