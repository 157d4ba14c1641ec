"""The memcached store's wire: the text protocol's requests and replies, and the sockets.

The commands the store sends (``_async_client.py``, and its generated twin
``_sync_client.py``) are written once over the pieces here, which come in two flavours
with the same methods: :class:`Connection` / :class:`AsyncConnection` (a socket, asyncio
streams) and :class:`Pool` / :class:`AsyncPool` (a few connections to one server). Requests
are built and replies checked by plain functions, the same for both.

Why not pymemcache's clients (sync) or aiomcache (async): the store sends two commands in
one round trip (``add`` + ``gets`` when it takes a lock, ``cas`` + ``delete ... noreply`` when
it writes and unlocks), which neither exposes; aiomcache's public API also has no multi-key
``gets`` with cas uniques and no metadump, has no socket timeouts, and its reply readers loop
on ``readline()`` without checking for end of file. pymemcache still places items on servers
(:class:`Router`), so placement is the same as its ``HashClient``'s.

A connection goes back to its pool only after a complete exchange; one that failed or was
cancelled halfway is closed, so no reply is ever read by the wrong command.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

from pymemcache.client.rendezvous import RendezvousHash  # type: ignore[import-untyped]

from ._config import Settings

Found = dict[str, tuple[bytes, int]]
"""``gets`` results: item name -> (value, cas unique), for the items present."""

END = b"END\r\n"
METADUMP = b"lru_crawler metadump all\r\n"
ERRORS: tuple[type[Exception], ...] = (OSError, EOFError)
"""What a broken connection raises, sync or async (timeouts are OSErrors too)."""


class Router:
    """Which server holds an item: rendezvous hashing over ``host:port`` names.

    pymemcache's ``RendezvousHash``, so items land where its ``HashClient`` puts them.
    """

    def __init__(self, servers: tuple[tuple[str, int], ...]) -> None:
        self.names = [f"{h}:{p}" for h, p in servers]
        self.hasher = RendezvousHash(list(self.names))

    def index(self, item: str) -> int:
        if len(self.names) == 1:
            return 0
        return self.names.index(self.hasher.get_node(item))

    def group(self, items: Iterable[str]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for item in items:
            out.setdefault(self.index(item), []).append(item)
        return out


class ServerError(Exception):
    """Memcached answered with an error or a reply the command does not expect."""


def refused(line: bytes) -> Exception:
    """What an unexpected reply line means: a closed connection, or memcached's error."""
    if not line.endswith(b"\n"):  # b"" (or a torn line) at end of file: never read it again
        return ConnectionResetError("memcached closed the connection")
    # memcached's error lines never echo a key; anything else is not quoted, in case it does
    if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
        return ServerError(line.decode("ascii", "replace").strip())
    return ServerError("unexpected reply from memcached")


# --- requests and replies -------------------------------------------------------------------


def gets_request(keys: Iterable[str]) -> bytes:
    return b"gets " + " ".join(keys).encode() + b"\r\n"


def store_request(verb: str, key: str, value: bytes, exptime: int, cas: int | None = None) -> bytes:
    """``add``/``cas``: the command line and the data block. Keys are checked by the caller."""
    unique = "" if cas is None else f" {cas}"
    return f"{verb} {key} 0 {exptime} {len(value)}{unique}\r\n".encode() + value + b"\r\n"


def delete_request(keys: Iterable[str], noreply: bool = False) -> bytes:
    end = b" noreply\r\n" if noreply else b"\r\n"
    return b"".join(b"delete " + k.encode() + end for k in keys)


def stored(line: bytes) -> bool:
    """A storage command's reply: True when stored, False when refused by its condition."""
    if line == b"STORED\r\n":
        return True
    if line in (b"NOT_STORED\r\n", b"EXISTS\r\n", b"NOT_FOUND\r\n"):
        return False
    raise refused(line)


def deleted(line: bytes) -> None:
    if line not in (b"DELETED\r\n", b"NOT_FOUND\r\n"):
        raise refused(line)


def listed(line: bytes) -> bytes:
    """A metadump line, whole."""
    if not line.endswith(b"\n"):
        raise refused(line)
    return line


def value_header(line: bytes) -> tuple[str, int, int]:
    """``VALUE <key> <flags> <bytes> <cas>``: the key, the data size and the cas unique."""
    head = line.split()
    if len(head) != 5 or head[0] != b"VALUE":
        raise refused(line)
    try:
        return head[1].decode("ascii"), int(head[3]), int(head[4])
    except ValueError:
        raise refused(line) from None


# --- connections ----------------------------------------------------------------------------


class Connection:
    """One socket; every send and read is bounded by the URL's ``timeout``.

    ``readline`` returns what it got, b"" at end of file: the reply checks above refuse a
    line without its end. ``readexactly`` fails at end of file.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        self.readline = self.file.readline
        self.send = sock.sendall

    @classmethod
    def open(cls, server: tuple[str, int], settings: Settings) -> Connection:
        sock = socket.create_connection(server, timeout=settings.connect_timeout)
        sock.settimeout(settings.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def readline_bounded(self) -> bytes:
        """:meth:`readline`, for exchanges with no overall deadline (sockets bound each read)."""
        return self.readline()

    def readexactly(self, n: int) -> bytes:
        data = self.file.read(n)
        if len(data) != n:
            raise ConnectionResetError("memcached closed the connection")
        return data

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class AsyncConnection:
    """One asyncio stream pair, with :class:`Connection`'s methods.

    ``send`` only buffers (the transport writes at once, and the reply is awaited next, so
    there is nothing to drain for). Reads are bounded by the exchange they belong to (see
    :class:`AsyncPool`), except :meth:`readline_bounded`.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self.writer, self.timeout = writer, timeout
        self.readline = reader.readline
        self.readexactly = reader.readexactly
        self.deadline = 0.0  # on the loop's clock, while an exchange runs
        self.expired = False

    @classmethod
    async def open(cls, server: tuple[str, int], settings: Settings) -> AsyncConnection:
        async with asyncio.timeout(settings.connect_timeout):
            reader, writer = await asyncio.open_connection(*server)
        return cls(reader, writer, settings.timeout)

    def send(self, data: bytes) -> None:
        if self.writer.transport.is_closing():  # lost: fail now, as a socket would
            raise ConnectionResetError("memcached closed the connection")
        self.writer.write(data)

    async def readline_bounded(self) -> bytes:
        """:meth:`readline` within ``timeout``, for exchanges with no overall deadline."""
        async with asyncio.timeout(self.timeout):
            return await self.readline()

    def expire(self) -> None:
        """The exchange's deadline passed: abort, so the read waiting on it fails now."""
        self.expired = True
        self.writer.transport.abort()

    def close(self) -> None:
        self.writer.close()


# --- pools ----------------------------------------------------------------------------------


class Pool:
    """Up to ``pool_size`` connections to one server; waits at most ``timeout`` for one."""

    def __init__(self, server: tuple[str, int], settings: Settings) -> None:
        self.server, self.settings = server, settings
        self.idle: list[Connection] = []
        self.opened = 0  # connections that exist, idle or in use: at most pool_size
        self.waiting = 0
        self.closed = False
        self.cond = threading.Condition(threading.Lock())

    def exchange(self) -> Exchange:
        """``with pool.exchange() as conn``: a connection for one request and its reply."""
        return Exchange(self)

    def take(self) -> Connection:
        try:
            return self.idle.pop()  # one step under the interpreter lock: no lock of ours
        except IndexError:
            return self._take_waiting()

    def _take_waiting(self) -> Connection:
        deadline = time.monotonic() + self.settings.timeout
        with self.cond:
            self.waiting += 1  # before looking, so a give() after the look wakes us
            try:
                while True:
                    with suppress(IndexError):
                        return self.idle.pop()
                    if self.opened < self.settings.pool_size:
                        self.opened += 1
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError("every pooled connection to memcached stayed busy")
                    self.cond.wait(left)
            finally:
                self.waiting -= 1
        try:
            return Connection.open(self.server, self.settings)
        except BaseException:
            self._gone()
            raise

    def give(self, conn: Connection, whole: bool) -> None:
        """Back to the pool after a ``whole`` exchange; closed after a broken one."""
        if whole and not self.closed:
            self.idle.append(conn)
            if self.waiting:
                with self.cond:
                    self.cond.notify()
        else:
            conn.close()
            self._gone()

    def _gone(self) -> None:
        with self.cond:
            self.opened -= 1
            self.cond.notify()

    @contextmanager
    def own_connection(self) -> Iterator[Connection]:
        """A new connection, outside the pool, closed after the exchange."""
        conn = Connection.open(self.server, self.settings)
        try:
            yield conn
        finally:
            conn.close()

    def close(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
            self._gone()


class Exchange:
    """One request and its reply on a pooled connection (sockets bound each step)."""

    __slots__ = ("conn", "pool")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def __enter__(self) -> Connection:
        self.conn = self.pool.take()
        return self.conn

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.pool.give(self.conn, kind is None)


class AsyncPool:
    """:class:`Pool` for asyncio, where each exchange must end within ``timeout``.

    The deadlines are kept by one watchdog per pool rather than a timer per exchange (which
    costs more than the rest of the client's work on an exchange): it runs every quarter
    ``timeout`` while exchanges are under way and aborts the connection of any that is
    late, so an exchange fails between ``timeout`` and 1.25 x ``timeout`` after it began.
    """

    def __init__(self, server: tuple[str, int], settings: Settings) -> None:
        self.server, self.settings = server, settings
        self.idle: list[AsyncConnection] = []
        self.busy: set[AsyncConnection] = set()
        self.opening = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False
        self._watch: asyncio.TimerHandle | None = None
        self._watch_loop: asyncio.AbstractEventLoop | None = None

    def exchange(self) -> AsyncExchange:
        """``async with pool.exchange() as conn``: a connection for one request and its
        reply, which must all be done within ``timeout``."""
        return AsyncExchange(self)

    async def take(self) -> AsyncConnection:
        conn = self.idle.pop() if self.idle else await self._take_waiting()
        loop = asyncio.get_running_loop()
        conn.deadline = loop.time() + self.settings.timeout
        self.busy.add(conn)
        if self._watch_loop is not loop:  # none yet, or one on a loop that is gone
            self._watch_loop = loop
            self._watch = loop.call_later(self.settings.timeout / 4, self._check)
        return conn

    async def _take_waiting(self) -> AsyncConnection:
        async with asyncio.timeout(self.settings.timeout):
            while not self.idle:
                if len(self.busy) + self.opening < self.settings.pool_size:
                    self.opening += 1
                    try:
                        return await self._open()
                    finally:
                        self.opening -= 1
                waiter = asyncio.get_running_loop().create_future()
                self.waiters.append(waiter)
                try:
                    await waiter
                finally:
                    with suppress(ValueError):
                        self.waiters.remove(waiter)
            return self.idle.pop()

    def give(self, conn: AsyncConnection, whole: bool) -> None:
        self.busy.discard(conn)
        if whole and not self.closed and not conn.expired:
            self.idle.append(conn)
        else:
            conn.close()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def _check(self) -> None:
        """The watchdog: abort the late, and look again while any exchange runs."""
        loop = self._watch_loop
        assert loop is not None
        now = loop.time()
        for conn in [c for c in self.busy if c.deadline <= now]:
            conn.expire()
        if self.busy:
            self._watch = loop.call_later(self.settings.timeout / 4, self._check)
        else:
            self._watch = self._watch_loop = None

    @asynccontextmanager
    async def own_connection(self) -> AsyncIterator[AsyncConnection]:
        """A new connection, outside the pool, closed after the exchange (which bounds each
        of its reads: :meth:`AsyncConnection.readline_bounded`)."""
        conn = await self._open()
        try:
            yield conn
        finally:
            conn.close()

    async def _open(self) -> AsyncConnection:
        return await AsyncConnection.open(self.server, self.settings)

    async def close(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()
        if self._watch is not None and not self.busy:
            self._watch.cancel()
            self._watch = self._watch_loop = None


class AsyncExchange:
    """:class:`Exchange` for asyncio. When the watchdog aborted the connection for being
    late, the read waiting on it fails, and leaving the exchange turns that into a
    ``TimeoutError``."""

    __slots__ = ("conn", "pool")

    def __init__(self, pool: AsyncPool) -> None:
        self.pool = pool

    async def __aenter__(self) -> AsyncConnection:
        self.conn = await self.pool.take()
        return self.conn

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        conn = self.conn
        self.pool.give(conn, kind is None)
        if conn.expired and kind is not None and issubclass(kind, Exception):
            raise TimeoutError("memcached did not answer within the timeout") from error
