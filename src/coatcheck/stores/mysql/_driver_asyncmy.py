"""The async store's driver boundary: asyncmy and its pool.

asyncmy binds every value itself (bytes included) and its pool checks a connection on
checkout without a round trip, replacing one the server closed while it sat idle. The
pool is created on first use, in the running event loop: one store object per loop.
Its sync twin is :mod:`._driver_pymysql`, with the same names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncmy
from asyncmy.constants import CLIENT

from ._config import IDLE_LIMIT, Settings

AsyncConnection = asyncmy.Connection
DRIVER_ERRORS = (asyncmy.errors.MySQLError, OSError)  # TimeoutError is an OSError


class AsyncPool:
    """At most ``pool_size`` connections, shared by the tasks of one event loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: asyncmy.Pool | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one operation; closed instead of pooled if anything fails."""
        pool = self._pool or self._start()
        settings = self._settings
        deadline = asyncio.timeout(settings.pool_timeout)
        try:
            async with deadline:
                conn = await pool.acquire()
        except DRIVER_ERRORS as e:
            cause = settings.pool_busy() if deadline.expired() else e
            raise settings.unavailable(cause, "connect") from e
        try:
            yield conn
        except BaseException:
            conn.close()  # mid-statement state is unknown: never reuse it
            raise
        finally:
            pool.release(conn)  # a closed connection leaves the pool

    def _start(self) -> asyncmy.Pool:
        args = self._settings.connect_args()
        args["client_flag"] = CLIENT.MULTI_STATEMENTS  # read-and-lock is one round trip
        maxsize = self._settings.pool_size
        self._pool = asyncmy.Pool(minsize=0, maxsize=maxsize, pool_recycle=IDLE_LIMIT, **args)
        return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            await pool.wait_closed()
