"""The app the load test drives, as ASGI (Starlette, uvicorn) and WSGI (waitress).

Routes, all answering JSON:

* ``/start?who=NAME``: a new session holding ``who`` and ``n = 0``.
* ``/inc``: exclusive lock, ``n += 1``; answers ``{who, n}``. A session that lost its data
  (its store forgot it) answers ``{who: null, n: null}`` and writes nothing.
* ``/get``: read-only; the whole session.
* ``/hold?secs=S``: exclusive lock, then sleeps while holding it (the worker-kill fault
  SIGKILLs the server in the middle of this request).
* ``/health``: no session.

The store URL comes from ``COATCHECK_LOAD_STORE``; ``COATCHECK_LOAD_LEASE`` and
``COATCHECK_LOAD_WAIT`` set the lock lease and lock wait (seconds); ``COATCHECK_LOAD_LOCK_MODE``
the lock mode (``exclusive``; ``none`` is the negative control: bursts then lose increments,
and the load test must say so).
``python -m bench.load_app asgi|wsgi PORT`` serves it on 127.0.0.1:PORT.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIEnvironment

from coatcheck import Config

STORE_ENV = "COATCHECK_LOAD_STORE"
LEASE_ENV = "COATCHECK_LOAD_LEASE"
WAIT_ENV = "COATCHECK_LOAD_WAIT"
MODE_ENV = "COATCHECK_LOAD_LOCK_MODE"


def config() -> Config:
    lease = float(os.environ.get(LEASE_ENV, "5"))
    wait = float(os.environ.get(WAIT_ENV, "3"))
    mode: Any = os.environ.get(MODE_ENV, "exclusive")
    return Config(gc_probability=0, lock_lease=lease, lock_wait=wait, lock_mode=mode)


def increment(session: Any) -> dict[str, Any]:
    """``/inc`` on a loaded session: the answer, and the change (none on a reset session)."""
    if "who" not in session:
        return {"who": None, "n": None}
    session["n"] += 1
    return {"who": session["who"], "n": session["n"]}


# --- ASGI -----------------------------------------------------------------------------------


def create_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from coatcheck.web.asgi import SessionMiddleware, load_session

    async def start(request: Request) -> Response:
        s = await load_session(request)
        s["who"] = request.query_params["who"]
        s["n"] = 0
        return JSONResponse({"who": s["who"], "n": 0})

    async def inc(request: Request) -> Response:
        return JSONResponse(increment(await load_session(request)))

    async def get(request: Request) -> Response:
        return JSONResponse(dict(await load_session(request, read_only=True)))

    async def hold(request: Request) -> Response:
        s = await load_session(request)
        s["held"] = True
        await asyncio.sleep(float(request.query_params.get("secs", "60")))
        return JSONResponse({"held": True})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    routes = [("/start", start), ("/inc", inc), ("/get", get), ("/hold", hold)]
    app = Starlette(routes=[Route(p, f) for p, f in [*routes, ("/health", health)]])
    app.add_middleware(SessionMiddleware, store=os.environ[STORE_ENV], config=config())
    return app


# --- WSGI -----------------------------------------------------------------------------------


def make_wsgi_app() -> Any:
    from coatcheck.web.wsgi import SessionMiddleware, configure_session, get_session

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        path = environ.get("PATH_INFO", "/")
        result: dict[str, Any]
        if path == "/health":
            result = {"ok": True}
        elif path == "/get":
            configure_session(environ, read_only=True)
            result = dict(get_session(environ))
        elif path == "/start":
            s = get_session(environ)
            s["who"], s["n"] = query["who"], 0
            result = {"who": s["who"], "n": 0}
        elif path == "/inc":
            result = increment(get_session(environ))
        elif path == "/hold":
            get_session(environ)["held"] = True
            time.sleep(float(query.get("secs", "60")))
            result = {"held": True}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b"{}"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(result).encode()]

    return SessionMiddleware(app, os.environ[STORE_ENV], config())


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "asgi":
        import uvicorn

        uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="warning")
    else:
        from waitress import serve

        serve(make_wsgi_app(), host="127.0.0.1", port=port, threads=16, _quiet=True)


if __name__ == "__main__":
    main(sys.argv[1:])
