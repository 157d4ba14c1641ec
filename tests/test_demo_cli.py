"""The demo app and the coatcheck command."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from coatcheck import Client, Config, SessionManager, open_store
from coatcheck.cli import main
from coatcheck.demo import make_app


def call(
    app: Any, path: str = "/", method: str = "GET", cookie: str | None = None, body: bytes = b""
) -> tuple[str, dict[str, str], str]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {
        "PATH_INFO": path,
        "REQUEST_METHOD": method,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_USER_AGENT": "test",
    }
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    out = b"".join(app(environ, start_response)).decode()
    return seen["status"], seen["headers"], out


def test_demo_counts_visits_and_regenerates(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/demo.db")
    status, headers, page = call(app)
    assert status == "200 OK" and 'id="visits">1<' in page
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "Secure" in headers["Set-Cookie"] and headers["Vary"] == "Cookie"
    _, headers2, page = call(app, cookie=cookie)
    assert 'id="visits">2<' in page and "Set-Cookie" not in headers2
    status, headers3, _ = call(app, "/regenerate", "POST", cookie)
    assert status == "303 See Other"
    new_cookie = headers3["Set-Cookie"].split(";")[0]
    assert new_cookie != cookie
    _, _, page = call(app, cookie=new_cookie)
    assert 'id="visits">3<' in page
    _, _, page = call(app, cookie=cookie)  # the old id is dead
    assert 'id="visits">1<' in page and "new session" in page


def test_demo_escapes_what_it_shows(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/demo.db")
    _, headers, _ = call(app)
    cookie = headers["Set-Cookie"].split(";")[0]
    call(app, "/set", "POST", cookie, b"name=%3Cb%3E&value=%3Cscript%3Ex%3C%2Fscript%3E")
    _, _, page = call(app, cookie=cookie)
    assert "<script>x" not in page and "&lt;script&gt;x" in page


def test_demo_destroy_deletes_the_cookie(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/demo.db")
    _, headers, _ = call(app)
    cookie = headers["Set-Cookie"].split(";")[0]
    _, headers, _ = call(app, "/destroy", "POST", cookie)
    assert "Max-Age=0" in headers["Set-Cookie"]


def test_cli_gc_and_stats(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    app = make_app(url)
    call(app)
    assert main(["stats", "--store", url]) == 0
    assert "live sessions: 1" in capsys.readouterr().out
    assert main(["gc", "--store", url]) == 0
    assert "removed 0" in capsys.readouterr().out
    assert main(["stats", "--store", "nosuch://x"]) == 2
    assert "unknown store URL scheme" in capsys.readouterr().err


UNREACHABLE = [
    "redis://127.0.0.1:1/0?connect_timeout=0.5",
    "redis+sentinel://127.0.0.1:1/mymaster?connect_timeout=0.5",
    "memcached://127.0.0.1:1?connect_timeout=0.5",
    "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1",
    "mysql://root@127.0.0.1:1/test?connect_timeout=1",
]


@pytest.mark.parametrize("command", ["gc", "stats", "init"])
@pytest.mark.parametrize("url", UNREACHABLE, ids=lambda u: u.split(":")[0])
def test_cli_fails_in_one_line_on_an_unreachable_store(url: str, command: str, capsys: Any) -> None:
    assert main([command, "--store", url]) == 2
    out, err = capsys.readouterr()
    assert "removed" not in out and "live sessions" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coatcheck: ")
    assert "schema" not in lines[0]  # the connection failed, not a schema step
    assert "Traceback" not in err


def test_read_only_commands_create_nothing_and_init_creates_the_schema(
    tmp_path: Path, capsys: Any
) -> None:
    db = tmp_path / "fresh.db"
    url = f"sqlite:///{db}"
    assert main(["stats", "--store", url]) == 0
    assert main(["gc", "--store", url]) == 0
    assert not db.exists()  # reading an empty store made no database
    assert main(["init", "--store", url]) == 0
    assert db.exists()
    assert "schema ready" in capsys.readouterr().out


def test_cli_takes_the_store_from_the_environment(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COATCHECK_STORE", "nosuch://from-env")
    assert main(["stats"]) == 2
    assert "'nosuch'" in capsys.readouterr().err


def test_demo_survives_a_visitor_setting_visits_to_text(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/demo.db")
    _, headers, _ = call(app)
    cookie = headers["Set-Cookie"].split(";")[0]
    call(app, "/set", "POST", cookie, b"name=visits&value=abc")
    status, _, page = call(app, cookie=cookie)
    assert status == "200 OK" and 'id="visits">1<' in page


def test_demo_releases_the_lock_when_a_request_fails(tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path}/demo.db", Config(lock_wait=0))
    _, headers, _ = call(app)
    cookie = headers["Set-Cookie"].split(";")[0]
    broken = {"PATH_INFO": "/set", "REQUEST_METHOD": "POST", "HTTP_COOKIE": cookie}
    broken["HTTP_USER_AGENT"] = "test"
    with pytest.raises(KeyError):  # no wsgi.input: the app fails while holding the lock
        app(broken, lambda status, headers: None)
    status, _, page = call(app, cookie=cookie)  # not kept waiting for the failed request
    assert status == "200 OK" and 'id="visits">2<' in page


def test_demo_answers_503_while_another_request_holds_the_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/demo.db"
    app = make_app(url, Config(lock_wait=0))
    _, headers, _ = call(app)
    cookie = headers["Set-Cookie"].split(";")[0]
    holder = SessionManager(open_store(url)).start(cookie.split("=", 1)[1], client=Client("test"))
    assert not holder.is_new
    status, headers, _ = call(app, cookie=cookie)
    assert status == "503 Service Unavailable" and headers["Retry-After"] == "1"
    holder.abort()
    assert call(app, cookie=cookie)[0] == "200 OK"
