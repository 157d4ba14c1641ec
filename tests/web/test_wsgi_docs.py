"""Every Python block in docs/web/wsgi.md runs, and the apps it builds answer as it says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

werkzeug_test = pytest.importorskip("werkzeug.test")

from coatcheck import Config, SessionManager, open_store  # noqa: E402
from coatcheck.web.wsgi import SessionMiddleware  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "web" / "wsgi.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
ENV = {"HTTP_USER_AGENT": "pytest", "REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.chdir(tmp_path)  # the examples use sqlite:///sessions.db
    out = []
    for code in BLOCK.findall(DOC.read_text()):
        namespace: dict[str, Any] = {"__name__": "docs"}
        exec(compile(code, str(DOC), "exec"), namespace)
        out.append(namespace)
    return out


def get(app: Any, path: str = "/") -> Any:
    client = werkzeug_test.Client(app)
    return client, client.get(path, environ_base=ENV, buffered=True)


def test_doc_blocks_run_and_answer(blocks: list[dict[str, Any]], tmp_path: Path) -> None:
    assert len(blocks) == 5
    setup, login, options, early, proxies = blocks
    client, first = get(setup["app"])
    assert first.get_data() == b"visits: 1\n"
    assert client.get("/", environ_base=ENV).get_data() == b"visits: 2\n"

    manager = SessionManager(open_store(f"sqlite:///{tmp_path}/docs.db"), Config())
    wrap = lambda app: SessionMiddleware(app, manager)  # noqa: E731
    routes = {"/login": login["login"], "/logout": login["logout"], "/": options["router"]}
    site = wrap(lambda environ, start: routes[environ["PATH_INFO"]](environ, start))
    client = werkzeug_test.Client(site)
    assert client.get("/", environ_base=ENV).get_data() == b"nobody"
    login_page = client.get("/login?user=ada", environ_base=ENV)
    assert login_page.get_data() == b"logged in as ada\n"
    assert client.get("/", environ_base=ENV).get_data() == b"ada"
    assert b"Max-Age=0" in client.get("/logout", environ_base=ENV).headers["Set-Cookie"].encode()
    assert manager.store.count() == 0
    assert get(wrap(options["health"]))[1].get_data() == b"ok"
    assert get(wrap(early["report"]))[1].get_data() == b"report 1\n"
    assert get(proxies["app"])[1].status_code == 204
