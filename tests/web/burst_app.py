"""The "AJAX burst" app, a real uvicorn server for it, and the burst client.

A page fires many XHRs at once, all carrying one session cookie. The app served here
touches the session in three ways, each followed by 50 ms of slow work:

* ``/early/{i}``: exclusive lock, increment a counter, ``write_close()``, then the work.
* ``/held/{i}``: exclusive lock held through the work; the request records when it
  entered (lock taken) and left (just before the lock is given back) in the session.
* ``/optimistic/{i}``: no lock; the request writes a key of its own.

Used by tests/web/test_burst_asgi.py (counts and ordering) and bench/bench_burst_asgi.py
(wall time). The store URL comes from ``COATCHECK_BURST_STORE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from coatcheck import Config
from coatcheck.web.asgi import SessionMiddleware, load_session

ROOT = Path(__file__).resolve().parents[2]
SLOW_WORK = 0.05
BURST = 8
CASES = ("early", "held", "optimistic")


async def start(request: Request) -> Response:
    s = await load_session(request)
    s["n"] = 0
    s["spans"] = []
    return PlainTextResponse("started")


async def early(request: Request) -> Response:
    s = await load_session(request)
    s["n"] += 1
    await s.write_close()  # the lock is free for the other requests during the work
    await asyncio.sleep(SLOW_WORK)
    return PlainTextResponse("ok")


async def held(request: Request) -> Response:
    s = await load_session(request)
    entered = time.monotonic()  # one server process: one monotonic clock for all stamps
    s["n"] += 1
    await asyncio.sleep(SLOW_WORK)
    s["spans"].append([entered, time.monotonic(), int(request.path_params["i"])])
    return PlainTextResponse("ok")


async def optimistic(request: Request) -> Response:
    s = await load_session(request, lock_mode="optimistic")
    s[f"k{request.path_params['i']}"] = True
    await asyncio.sleep(SLOW_WORK)
    return PlainTextResponse("ok")


async def state(request: Request) -> Response:
    return JSONResponse(dict(await load_session(request, read_only=True)))


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/start", start),
            Route("/early/{i:int}", early),
            Route("/held/{i:int}", held),
            Route("/optimistic/{i:int}", optimistic),
            Route("/state", state),
            Route("/health", health),
        ]
    )
    config = Config(gc_probability=0, lock_wait=30)
    app.add_middleware(SessionMiddleware, store=os.environ["COATCHECK_BURST_STORE"], config=config)
    return app


# --- the server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(store_url: str, ready_within: float = 30) -> Iterator[str]:
    """Run the app under uvicorn in a subprocess; yields its base URL."""
    port = free_port()
    env = {**os.environ, "COATCHECK_BURST_STORE": store_url}
    command = [sys.executable, "-m", "uvicorn", "--factory", "tests.web.burst_app:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(server, base, ready_within)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_ready(server: subprocess.Popen[bytes], base: str, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode} before serving")
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"uvicorn did not answer within {within}s")


# --- the burst -------------------------------------------------------------------------------


async def burst(base: str, case: str, size: int = BURST) -> tuple[str, list[int], dict[str, Any]]:
    """Start a session, fire ``size`` concurrent requests of ``case`` with its cookie.

    Returns the cookie, the statuses, and the session's data as stored afterwards.
    """
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        started = await client.get("/start")
        cookie = started.headers["set-cookie"].split(";", 1)[0]
        statuses = await fire(client, cookie, case, range(size))
        return cookie, statuses, await stored_data(client, cookie)


async def fire(
    client: httpx.AsyncClient, cookie: str, case: str, which: Iterable[int]
) -> list[int]:
    """Send the requests numbered ``which`` of ``case`` at once; their statuses, in order."""
    responses = await asyncio.gather(
        *(client.get(f"/{case}/{i}", headers={"Cookie": cookie}) for i in which)
    )
    return [r.status_code for r in responses]


async def stored_data(client: httpx.AsyncClient, cookie: str) -> dict[str, Any]:
    data: dict[str, Any] = (await client.get("/state", headers={"Cookie": cookie})).json()
    return data
