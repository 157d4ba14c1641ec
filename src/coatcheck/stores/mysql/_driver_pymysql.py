"""The sync store's driver boundary: PyMySQL, and the pool PyMySQL does not have.

The same names as :mod:`._driver_asyncmy`. A bounded LIFO queue holds idle connections (or
``None`` for a slot not connected yet), so at most ``pool_size`` exist and busy threads
wait up to ``pool_timeout`` for one. The pool makes each TCP socket itself and hands it to
PyMySQL's public ``connect(sock)``, so on checkout it can tell without a round trip
whether the server closed an idle connection (``KILL``, a restart, ``wait_timeout``) or
sent an error: the socket is readable. (PyMySQL makes a Unix socket itself, as it trusts
only its own for password authentication; those connections are pinged instead.) One
that saw an error is closed, never returned. After ``os.fork()`` the child starts an
empty pool: a socket is never shared with the parent.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pymysql  # type: ignore[import-untyped]
from pymysql.constants import CLIENT  # type: ignore[import-untyped]

from .._url import pending_input
from ._config import IDLE_LIMIT, Settings

Connection = Any  # pymysql.connections.Connection: the driver ships no type hints
DRIVER_ERRORS = (pymysql.err.MySQLError, OSError)  # TimeoutError is an OSError

_Idle = tuple[Connection, int, float]  # a connection, its socket's fd (-1: unknown), since


class Pool:
    """At most ``pool_size`` connections, shared by threads."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._guard = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._slots: queue.LifoQueue[_Idle | None] = queue.LifoQueue(self._settings.pool_size)
        for _ in range(self._settings.pool_size):
            self._slots.put(None)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for one operation; closed instead of pooled if anything fails."""
        if self._pid != os.getpid():
            with self._guard:
                if self._pid != os.getpid():
                    self._reset()  # a forked child: leave the parent's sockets alone
        slots, settings = self._slots, self._settings
        try:
            idle = slots.get(timeout=settings.pool_timeout)
        except queue.Empty:
            raise settings.unavailable(settings.pool_busy(), "connect") from None
        got: _Idle | None = None
        try:
            got = self._checkout(idle)
            yield got[0]
            got = (got[0], got[1], time.monotonic())
        except BaseException:
            _close(got)
            got = None
            raise
        finally:
            if slots is not self._slots:  # the pool was closed meanwhile
                _close(got)
                got = None
            slots.put(got)

    def _checkout(self, idle: _Idle | None) -> _Idle:
        if idle is not None:
            if time.monotonic() - idle[2] <= IDLE_LIMIT and _alive(idle):
                return idle
            _close(idle)  # the server hung up or sent an error, or it idled too long
        try:
            return _connect(self._settings)
        except DRIVER_ERRORS as e:
            raise self._settings.unavailable(e, "connect") from e

    def close(self) -> None:
        """Close every idle connection; busy ones are closed when given back."""
        with self._guard:
            slots = self._slots
            self._reset()
        while True:
            try:
                _close(slots.get_nowait())
            except queue.Empty:
                return


def _connect(settings: Settings) -> _Idle:
    args = settings.connect_args()
    args["client_flag"] = CLIENT.MULTI_STATEMENTS  # read-and-lock is one round trip
    args["write_timeout"] = settings.write_timeout
    conn = pymysql.connect(defer_connect=True, **args)
    if settings.unix_socket:
        conn.connect()
        return conn, -1, time.monotonic()
    sock = socket.create_connection((settings.host, settings.port), settings.connect_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    fd = sock.fileno()  # TLS wraps (and detaches) the socket object, not the descriptor
    conn.connect(sock)
    return conn, fd, time.monotonic()


def _alive(idle: _Idle) -> bool:
    """False when the server closed an idle connection or sent it an error."""
    conn, fd, _ = idle
    if fd < 0:
        try:
            conn.ping(False)
            return True
        except DRIVER_ERRORS:
            return False
    return not pending_input(fd)  # readable while idle: EOF or an error packet


def _close(idle: _Idle | None) -> None:
    if idle is not None:
        with suppress(Exception):
            idle[0].close()  # sends COM_QUIT, and closes the socket even when that fails
