"""Two app servers behind one (imaginary) load balancer: the seeds' problem, shown and solved.

Two separate processes serve the Flask integration over HTTP on two loopback ports. A
browser alternating between them keeps its session only when both servers share the store
(Redis, PostgreSQL); with ``file://`` stores in two directories, the other server has no such
session and starts a fresh one, which is why PHP's default files break behind a balancer.

The processes start once for the module. Each mounts one Flask app per store under
``/<name>/``; the shared stores get a key prefix / table of their own, dropped at the end.
Run as ``python -m tests.test_two_servers name=url ...`` it is one of those servers.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.postgresql import drop_namespace as drop_postgresql
from tests.support.redis import drop_namespace as drop_redis

from .services import POSTGRES_URL, REDIS_URL, reachable, require

ROOT = Path(__file__).resolve().parents[1]
UA = "two-servers-test"
COOKIE = "session"


# --- the server process -------------------------------------------------------------------


def build_app(mounts: dict[str, str]) -> object:
    """A WSGI app with one Flask app per store, each counting visits in its session."""
    from flask import Flask, jsonify, session
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from coatcheck.web.flask import init_app

    def counter(name: str, url: str) -> Flask:
        app = Flask(f"two_servers_{name}")
        # gc off: a GC pass is not what this test is about and would add store calls;
        # browser-session cookies: a persistent one would be re-sent on every write
        app.config.update(COATCHECK_STORE=url, COATCHECK_GC_PROBABILITY=0, SESSION_PERMANENT=False)
        init_app(app)

        @app.get("/count")
        def count() -> object:
            session["n"] = session.get("n", 0) + 1
            return jsonify(n=session["n"], pid=os.getpid())

        return app

    root = Flask("two_servers_root")
    return DispatcherMiddleware(root, {f"/{n}": counter(n, u) for n, u in mounts.items()})


def serve(argv: list[str]) -> None:
    """Serve on a free loopback port and print it, so the parent never races for a port."""
    from waitress import create_server

    mounts = dict(arg.split("=", 1) for arg in argv)
    server = create_server(build_app(mounts), host="127.0.0.1", port=0, threads=2)
    print(server.effective_port, flush=True)  # type: ignore[union-attr]
    server.run()


# --- the test side ------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int


@dataclass
class Browser:
    """Keeps one cookie per mounted app, as a browser keeps one per path.

    The cookie is Secure, and these servers speak plain HTTP on loopback; a real browser
    would be behind TLS, so the test carries the cookie itself.
    """

    cookies: dict[str, str] = field(default_factory=dict)

    def count(self, server: Server, name: str) -> tuple[int, int, str | None]:
        """GET /<name>/count: (counter, server pid, the id a Set-Cookie issued, if any)."""
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        headers = {"User-Agent": UA}
        if name in self.cookies:
            headers["Cookie"] = f"{COOKIE}={self.cookies[name]}"
        try:
            conn.request("GET", f"/{name}/count", headers=headers)
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, body
            issued = None
            for header in response.headers.get_all("Set-Cookie") or []:
                pair = header.split(";", 1)[0]
                key, _, value = pair.partition("=")
                if key.strip() == COOKIE and value:
                    issued = self.cookies[name] = value
        finally:
            conn.close()
        got = json.loads(body)
        return got["n"], got["pid"], issued


def start(mounts: dict[str, str]) -> Server:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.test_two_servers", *(f"{n}={u}" for n, u in mounts.items())],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.strip().isdigit():
        process.kill()
        process.wait()
        raise RuntimeError(f"the app server did not start (printed {line!r})")
    return Server(process, int(line))


def _with(url: str, **options: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in options.items())


def _up(url: str) -> bool:
    parts = urlsplit(url)
    return reachable(parts.hostname or "127.0.0.1", parts.port or 0)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    ns = "cc_two_" + uuid.uuid4().hex[:10]
    shared: dict[str, str] = {}
    if _up(REDIS_URL):
        shared["redis"] = _with(REDIS_URL, prefix=ns + ":")
    if _up(POSTGRES_URL):
        shared["postgresql"] = _with(POSTGRES_URL, table=ns)
    a_dir, b_dir = tmp_path_factory.mktemp("server_a"), tmp_path_factory.mktemp("server_b")
    pair = []
    try:
        for own in (a_dir, b_dir):  # each server's file store is on its own disk
            pair.append(start({**shared, "file": f"file://{own}/sessions"}))
        yield pair[0], pair[1]
    finally:
        for server in pair:
            server.process.terminate()
            server.process.wait(timeout=10)
        if "redis" in shared:
            drop_redis(shared["redis"])
        if "postgresql" in shared:
            drop_postgresql(shared["postgresql"])


@pytest.mark.parametrize(("name", "service"), [("redis", REDIS_URL), ("postgresql", POSTGRES_URL)])
def test_shared_store_keeps_the_session_across_servers(
    servers: tuple[Server, Server], name: str, service: str
) -> None:
    parts = urlsplit(service)
    require(parts.hostname or "127.0.0.1", parts.port or 0, name)
    a, b = servers
    browser = Browser()
    seen = []
    for i in range(6):
        n, pid, issued = browser.count((a, b)[i % 2], name)
        seen.append(n)
        assert pid == (a, b)[i % 2].process.pid  # really served by the other process
        if i > 0:
            assert issued is None  # the same session: no new cookie
    assert seen == [1, 2, 3, 4, 5, 6]


def test_file_stores_on_two_servers_lose_the_session(servers: tuple[Server, Server]) -> None:
    a, b = servers
    browser = Browser()
    n, _, first = browser.count(a, "file")
    assert (n, browser.count(a, "file")[0]) == (1, 2)  # one server alone keeps it

    n, pid, second = browser.count(b, "file")
    assert pid == b.process.pid
    assert n == 1  # server B has no such file: strict mode starts a fresh session
    assert second is not None and second != first

    n, _, third = browser.count(a, "file")
    assert n == 1  # and back on A the new id is unknown too: the user "looks logged out"
    assert third is not None and third not in (first, second)


if __name__ == "__main__":
    serve(sys.argv[1:])
