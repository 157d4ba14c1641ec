"""A burst of concurrent requests sharing one session, against waitress in a subprocess.

Shared by tests/web/test_burst_wsgi.py (which asserts counts and ordering) and
bench/bench_burst_wsgi.py (which times it). ``python -m tests.web.wsgi_burst STORE_URL``
serves :func:`make_app` with waitress on a free loopback port and prints ``port N``.

Routes (all answer JSON):
  /seed             start a session with ``n = 0``
  /incr?early=1     ``n += 1``; with ``early``, write_close() before the slow work
  /key?name=k       optimistic: ``session[k] = True``
  /state            read-only: the session's data
Every route but /seed and /state then sleeps ``work`` seconds (query, default 0.05), and
reports ``seen`` (n before its change) and ``held``: monotonic times from the first touch to
the lock's release (write_close, or just before start_response).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIEnvironment

from coatcheck import Config, SessionManager, open_store
from coatcheck.web.wsgi import SessionMiddleware, configure_session, get_session

ROOT = Path(__file__).resolve().parents[2]
THREADS = 8
UA = "burst"


def make_app(store_url: str) -> SessionMiddleware:
    manager = SessionManager(open_store(store_url), Config(gc_probability=0, lock_wait=20))

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        path = environ.get("PATH_INFO", "/")
        if path == "/state":
            configure_session(environ, read_only=True)
        elif path == "/key":
            configure_session(environ, lock_mode="optimistic")
        session = get_session(environ)
        result: dict[str, Any] = {}
        if path == "/seed":
            session["n"] = 0
        elif path == "/state":
            result = dict(session)
        else:
            result["seen"] = session.get("n", 0)  # first touch: loaded (and locked) here
            t0 = time.monotonic()
            if path == "/incr":
                session["n"] = result["seen"] + 1
            else:
                session[query["name"]] = True
            if query.get("early"):
                session.write_close()
                result["held"] = [t0, time.monotonic()]
            time.sleep(float(query.get("work", "0.05")))  # the slow part of the request
            result.setdefault("held", [t0, time.monotonic()])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(result).encode()]

    return SessionMiddleware(app, manager)


@contextmanager
def serve(store_url: str, threads: int = THREADS) -> Iterator[str]:
    """Run :func:`make_app` under waitress in a subprocess; yields its base URL."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.web.wsgi_burst", store_url, str(threads)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # the server prints its port once it listens
            if not line.startswith("port "):
                proc.wait(10)
                log.seek(0)
                raise RuntimeError(f"waitress did not start: {log.read().decode()[-2000:]}")
            yield f"http://127.0.0.1:{int(line.split()[1])}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def call(base: str, path: str, sid: str | None = None) -> tuple[int, Any, str | None]:
    """GET ``path``: status, JSON body, and the session id of any Set-Cookie."""
    request = urllib.request.Request(base + path, headers={"User-Agent": UA})
    if sid is not None:
        request.add_header("Cookie", f"session={sid}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, body, headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as e:
        status, body, headers = e.code, e.read(), e.headers
    cookie = None
    for header in headers.get_all("Set-Cookie") or []:
        if header.startswith("session="):
            cookie = header.split(";", 1)[0].split("=", 1)[1]
    payload = json.loads(body) if headers.get("Content-Type") == "application/json" else body
    return status, payload, cookie


def burst(base: str, sid: str, paths: list[str]) -> list[tuple[int, Any]]:
    """Send every path at once, in its own thread, all with cookie ``sid``."""
    gate = threading.Barrier(len(paths))

    def one(path: str) -> tuple[int, Any]:
        gate.wait()
        status, body, _ = call(base, path, sid)
        return status, body

    with ThreadPoolExecutor(len(paths)) as pool:
        return list(pool.map(one, paths))


def seed(base: str) -> str:
    status, _, sid = call(base, "/seed")
    assert status == 200 and sid is not None
    return sid


def main(argv: list[str]) -> None:
    from waitress import create_server

    threads = int(argv[1]) if len(argv) > 1 else THREADS
    server = create_server(make_app(argv[0]), host="127.0.0.1", port=0, threads=threads)
    print(f"port {server.effective_port}", flush=True)  # type: ignore[union-attr]
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
