"""A small FastAPI app on coatcheck sessions: a counter, login with a new id, logout.

Run it with ``python examples/fastapi_app.py`` and open http://localhost:8000 (browsers
accept the Secure cookie on localhost). Sessions go to ``examples/fastapi-sessions.db``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse

from coatcheck import AsyncSessionManager, Config
from coatcheck.web.asgi import SessionMiddleware
from coatcheck.web.fastapi import ReadOnlySessionDep, SessionDep

DEFAULT_STORE = f"sqlite:///{Path(__file__).resolve().parent / 'fastapi-sessions.db'}"


def create_app(store: AsyncSessionManager | str = DEFAULT_STORE) -> FastAPI:
    app = FastAPI()
    config = None if isinstance(store, AsyncSessionManager) else Config(idle_timeout=1800)
    app.add_middleware(SessionMiddleware, store=store, config=config)

    @app.get("/", response_class=PlainTextResponse)
    async def index(session: SessionDep) -> str:
        session["visits"] = session.get("visits", 0) + 1
        return f"Hello {session.get('user', 'nobody')}; visits: {session['visits']}"

    @app.get("/me", response_class=PlainTextResponse)
    async def me(session: ReadOnlySessionDep) -> str:
        # read-only: no lock, no write, so it never waits behind a slow request
        return session.get("user", "nobody")

    @app.post("/login", response_class=PlainTextResponse)
    async def login(user: str, session: SessionDep) -> str:
        if not user.isalnum():
            raise HTTPException(422, "user names are letters and digits")
        session.regenerate_id()  # a new id at every privilege change: no session fixation
        session["user"] = user
        return f"logged in as {user}"

    @app.post("/logout", response_class=PlainTextResponse)
    async def logout(session: SessionDep) -> str:
        await session.destroy()  # server-side data removed, cookie expired
        return "logged out"

    @app.get("/health", response_class=PlainTextResponse)
    async def health(request: Request) -> str:
        return "ok"  # never touches the session: no store call, no cookie

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host="127.0.0.1", port=8000)
