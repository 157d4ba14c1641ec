"""A small thread-safe pool of PyMySQL connections, and the health check both stores share.

A bounded LIFO queue holds idle connections (or ``None`` for a slot not yet connected), so
at most ``size`` connections exist and busy threads wait up to ``timeout`` for one. On
checkout a connection is checked without a round trip: if its socket is readable while
idle, the server has closed it (``KILL``, restart, ``wait_timeout``) or sent an error,
and a new connection replaces it; one idle for over a minute is pinged first. A
connection that saw an error is closed, never returned. After ``os.fork()`` the child
starts an empty pool: a socket must never be shared with the parent.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..errors import LockLost, StoreUnavailable, VersionMismatch

PING_AFTER = 60.0
"""Seconds idle after which a connection is pinged on checkout even if it looks fine."""

Connection = Any  # pymysql.connections.Connection: the driver ships no type hints

KEEPS_CONNECTION = (LockLost, VersionMismatch)
"""Errors raised after a statement completed normally: the connection stays usable."""


def suspect(sock: socket.socket | None) -> bool:
    """True when an idle connection's socket has something to read: EOF or an error packet."""
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


class ConnectionPool:
    """At most ``size`` connections made by ``connect``, shared by threads."""

    def __init__(
        self, connect: Callable[[], Connection], size: int, timeout: float, where: str
    ) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._where = where
        self._guard = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._slots: queue.LifoQueue[tuple[Connection, float] | None] = queue.LifoQueue(self._size)
        for _ in range(self._size):
            self._slots.put(None)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A healthy connection for one operation; closed instead of returned on errors."""
        if self._pid != os.getpid():
            with self._guard:
                if self._pid != os.getpid():
                    self._reset()  # forked child: drop the parent's sockets unused
        slots = self._slots
        try:
            idle = slots.get(timeout=self._timeout)
        except queue.Empty:
            raise StoreUnavailable(
                f"{self._where}: all {self._size} pooled connections stayed busy for"
                f" {self._timeout:g}s (raise pool_size?)"
            ) from None
        conn: Connection = None
        try:
            conn = self._checkout(idle)
            yield conn
        except KEEPS_CONNECTION:
            raise
        except BaseException:
            _close(conn)
            conn = None
            raise
        finally:
            if slots is not self._slots:  # the pool was closed meanwhile
                _close(conn)
                conn = None
            slots.put(None if conn is None else (conn, time.monotonic()))

    def _checkout(self, idle: tuple[Connection, float] | None) -> Connection:
        if idle is None:
            return self._connect()
        conn, since = idle
        if suspect(getattr(conn, "_sock", None)):
            _close(conn)  # the server hung up or sent an error: no need to ask
            return self._connect()
        if time.monotonic() - since > PING_AFTER:
            try:
                conn.ping(False)  # PyMySQL deprecates ping(reconnect=True): connect anew
            except Exception:
                _close(conn)
                return self._connect()
        return conn

    def close(self) -> None:
        """Close every idle connection; busy ones are closed when given back."""
        while True:
            try:
                idle = self._slots.get_nowait()
            except queue.Empty:
                break
            if idle is not None:
                _close(idle[0])
        self._reset()


def _close(conn: Connection) -> None:
    if conn is None:
        return
    with suppress(Exception):
        conn.close()  # sends COM_QUIT; fails on a dead socket
    with suppress(Exception):
        conn._force_close()
