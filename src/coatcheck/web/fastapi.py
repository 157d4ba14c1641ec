"""FastAPI dependencies: the loaded session, with per-route options.

::

    from coatcheck.web.fastapi import SessionDep, coatcheck_session

    @app.get("/cart")
    async def cart(session: AsyncSession = Depends(coatcheck_session(read_only=True))): ...

    @app.post("/cart")
    async def add(session: SessionDep): ...

The dependencies need :class:`~coatcheck.web.asgi.SessionMiddleware` installed
(``app.add_middleware(SessionMiddleware, store=...)``); they load the request's session
through it (PHP's ``session_start``), so a route that does not ask for the session costs
no store call. The middleware saves the session when the response starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from .common import require

require("fastapi", "fastapi")

from fastapi import Depends  # noqa: E402
from starlette.requests import HTTPConnection  # noqa: E402

from ..config import LockMode  # noqa: E402
from ..session import AsyncSession  # noqa: E402
from .asgi import load_session, no_session  # noqa: E402

__all__ = ["NoSession", "ReadOnlySessionDep", "SessionDep", "coatcheck_session", "without_session"]


def coatcheck_session(
    *, read_only: bool = False, lock_mode: LockMode | None = None
) -> Callable[[HTTPConnection], Awaitable[AsyncSession]]:
    """A dependency giving the route its loaded :class:`~coatcheck.AsyncSession`.

    ``read_only=True``: no lock, no write (PHP's ``read_and_close``); ``lock_mode``: this
    route's locking, e.g. ``"optimistic"``. When several dependencies of one request ask,
    the first load wins.
    """

    async def session_dependency(connection: HTTPConnection) -> AsyncSession:
        return await load_session(connection, read_only=read_only, lock_mode=lock_mode)

    return session_dependency


async def without_session(connection: HTTPConnection) -> None:
    """Opt a route out: an autoloaded session is released unsaved; using it raises."""
    await no_session(connection)


SessionDep = Annotated[AsyncSession, Depends(coatcheck_session())]
"""The session, loaded with the configured lock mode: ``async def view(session: SessionDep)``."""

ReadOnlySessionDep = Annotated[AsyncSession, Depends(coatcheck_session(read_only=True))]
"""The session read without a lock and never written (PHP's ``read_and_close``)."""

NoSession = Depends(without_session)
"""``@app.get("/poll", dependencies=[NoSession])``: this route never holds the session."""
