"""The memcached store's driver boundary: the same five commands, sync and async.

:class:`Client` (over pymemcache) and :class:`AsyncClient` (asyncio streams) have the same
methods, so the store is written once, async, and its sync twin is generated from it
(scripts/unasync.py turns ``AsyncClient`` into ``Client``). Each serves one server with a
small pool of connections, and every socket operation is bounded by the URL's timeouts.
A method returns, or raises one of its class's ``ERRORS``; the store then drops the whole
client (a server that failed one connection probably failed them all) and builds anew.

The async side speaks the text protocol itself rather than through aiomcache: aiomcache's
public API has no multi-key ``gets`` with cas uniques and no metadump, it has no socket
timeouts, and its reply readers loop on ``readline()`` without checking for end of file,
so a connection the server closed spins the event loop until the caller gives up. Fixing
that took overriding its private methods; these five commands are simpler to write out.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from pymemcache.client.base import PooledClient  # type: ignore[import-untyped]
from pymemcache.client.rendezvous import RendezvousHash  # type: ignore[import-untyped]
from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped]

from ._config import Settings

Found = dict[str, tuple[bytes, int]]
"""``gets`` results: item name -> (value, cas unique), for the items present."""

METADUMP = b"lru_crawler metadump all\r\n"
_END = b"END\r\n"


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


def _refused(line: bytes) -> ServerError:
    # memcached's error lines never echo a key; anything else is not quoted, in case it does
    if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
        return ServerError(line.decode("ascii", "replace").strip())
    return ServerError("unexpected reply from memcached")


class Client:
    """One memcached server through pymemcache's ``PooledClient``."""

    ERRORS: tuple[type[Exception], ...] = (MemcacheError, OSError)

    def __init__(self, server: tuple[str, int], settings: Settings) -> None:
        self.server = server
        self.settings = settings
        self.pool = PooledClient(
            server,
            connect_timeout=settings.connect_timeout,
            timeout=settings.timeout,
            no_delay=True,
            max_pool_size=settings.pool_size,
            default_noreply=False,
            allow_unicode_keys=False,
        )

    def gets_many(self, keys: list[str]) -> Found:
        got = self.pool.gets_many(keys)
        return {k: (bytes(value), int(cas)) for k, (value, cas) in got.items()}

    def add(self, key: str, value: bytes, exptime: int) -> bool:
        return bool(self.pool.add(key, value, exptime, noreply=False))

    def cas(self, key: str, value: bytes, cas: int, exptime: int) -> bool:
        return bool(self.pool.cas(key, value, cas, exptime, noreply=False))

    def delete_many(self, keys: list[str]) -> None:
        self.pool.delete_many(keys, noreply=False)

    def metadump(self) -> list[bytes]:
        """The lines of ``lru_crawler metadump all`` before END; a status line ends them.

        On a connection of its own: pymemcache has no reader for a reply that ends either
        in END or in one status line (BUSY, ERROR).
        """
        s = self.settings
        with socket.create_connection(self.server, timeout=s.connect_timeout) as sock:
            sock.settimeout(s.timeout)
            sock.sendall(METADUMP)
            lines: list[bytes] = []
            for line in sock.makefile("rb"):
                if line == _END:
                    return lines
                if not line.endswith(b"\n"):
                    break
                lines.append(line)
                if not line.startswith(b"key="):
                    return lines
        raise ConnectionResetError("memcached closed the connection during a metadump")

    def close(self) -> None:
        self.pool.close()


class AsyncClient:
    """One memcached server over asyncio streams: the text protocol, a pool of connections.

    A connection goes back to the pool only after a complete exchange; one that failed or
    was cancelled halfway is closed, so no reply is ever read by the wrong command.
    """

    ERRORS: tuple[type[Exception], ...] = (OSError, EOFError, ServerError)

    def __init__(self, server: tuple[str, int], settings: Settings) -> None:
        self.server = server
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: list[_Connection] = []
        self._closed = False

    async def gets_many(self, keys: list[str]) -> Found:
        found: Found = {}
        async with self._connection() as c:
            await c.send(b"gets " + " ".join(keys).encode() + b"\r\n")
            while (line := await c.line()) != _END:
                head = line.split()
                if len(head) != 5 or head[0] != b"VALUE":
                    raise _refused(line)
                value = await c.exactly(int(head[3]) + 2)
                found[head[1].decode()] = (value[:-2], int(head[4]))
        return found

    async def add(self, key: str, value: bytes, exptime: int) -> bool:
        return await self._store(f"add {key} 0 {exptime} {len(value)}", value)

    async def cas(self, key: str, value: bytes, cas: int, exptime: int) -> bool:
        return await self._store(f"cas {key} 0 {exptime} {len(value)} {cas}", value)

    async def delete_many(self, keys: list[str]) -> None:
        async with self._connection() as c:
            await c.send(b"".join(f"delete {k}\r\n".encode() for k in keys))
            for _ in keys:
                line = await c.line()
                if line not in (b"DELETED\r\n", b"NOT_FOUND\r\n"):
                    raise _refused(line)

    async def metadump(self) -> list[bytes]:
        """The lines of ``lru_crawler metadump all`` before END; a status line ends them."""
        lines: list[bytes] = []
        async with self._connection() as c:
            await c.send(METADUMP)
            while (line := await c.line()) != _END:
                lines.append(line)
                if not line.startswith(b"key="):
                    break
        return lines

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def _store(self, command: str, value: bytes) -> bool:
        async with self._connection() as c:
            await c.send(command.encode() + b"\r\n" + value + b"\r\n")
            line = await c.line()
            if line == b"STORED\r\n":
                return True
            if line in (b"NOT_STORED\r\n", b"EXISTS\r\n", b"NOT_FOUND\r\n"):
                return False
            raise _refused(line)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        async with asyncio.timeout(self.settings.timeout):
            await self._slots.acquire()  # all pool_size connections busy: wait, bounded
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except BaseException:
                conn.close()
                raise
            if self._closed:
                conn.close()
            else:
                self._idle.append(conn)
        finally:
            self._slots.release()

    async def _connect(self) -> _Connection:
        async with asyncio.timeout(self.settings.connect_timeout):
            reader, writer = await asyncio.open_connection(*self.server)
        return _Connection(reader, writer, self.settings.timeout)


class _Connection:
    """A stream pair whose every read and drain is bounded, like a socket with a timeout."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self.reader, self.writer, self.timeout = reader, writer, timeout

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.timeout):
            await self.writer.drain()

    async def line(self) -> bytes:
        async with asyncio.timeout(self.timeout):
            line = await self.reader.readline()
        if not line.endswith(b"\n"):  # b"" at end of file: fail, never read it again
            raise ConnectionResetError("memcached closed the connection")
        return line

    async def exactly(self, n: int) -> bytes:
        async with asyncio.timeout(self.timeout):
            return await self.reader.readexactly(n)

    def close(self) -> None:
        self.writer.close()
