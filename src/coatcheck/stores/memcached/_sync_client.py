# Generated from _async_client.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The commands the memcached store sends to one server: the source of both twins.

``_sync_client.py`` is generated from this file by scripts/unasync.py (``make unasync``);
edit this one. A method returns, or raises one of ``Client.ERRORS``; the store then
drops the whole client (a server that failed one connection probably failed them all) and
builds a new one on its next call.
"""

from __future__ import annotations

from ._client import (
    END,
    ERRORS,
    METADUMP,
    Connection,
    Found,
    Pool,
    ServerError,
    delete_request,
    deleted,
    gets_request,
    listed,
    store_request,
    stored,
    value_header,
)
from ._config import Settings


class Client:
    """One memcached server, over a small pool of connections."""

    ERRORS: tuple[type[Exception], ...] = (*ERRORS, ServerError)

    def __init__(self, server: tuple[str, int], settings: Settings) -> None:
        self.pool = Pool(server, settings)

    def gets_many(self, keys: list[str]) -> Found:
        with self.pool.exchange() as c:
            c.send(gets_request(keys))
            return _values(c)

    def add(self, key: str, value: bytes, exptime: int) -> bool:
        with self.pool.exchange() as c:
            c.send(store_request("add", key, value, exptime))
            return stored(c.readline())

    def cas(self, key: str, value: bytes, cas: int, exptime: int) -> bool:
        with self.pool.exchange() as c:
            c.send(store_request("cas", key, value, exptime, cas))
            return stored(c.readline())

    def add_gets(self, key: str, value: bytes, exptime: int, keys: list[str]) -> tuple[bool, Found]:
        """``add`` then ``gets``, sent together: one round trip, and memcached runs them in
        order, so the ``gets`` sees what the ``add`` left."""
        with self.pool.exchange() as c:
            c.send(store_request("add", key, value, exptime) + gets_request(keys))
            added = stored(c.readline())
            return added, _values(c)

    def cas_release(
        self, key: str, value: bytes, cas: int, exptime: int, lock: str, relock: bytes, ttl: int
    ) -> tuple[bool, bool]:
        """``cas`` of ``key`` and ``delete <lock> noreply``, sent together: one round trip.

        The delete runs whether the cas was stored or not; when it was not, ``add`` puts the
        lock value ``relock`` back (on this connection, so after the delete). Returns
        (stored, whether the lock is held again): (False, False) means another request took
        the lock in that moment."""
        with self.pool.exchange() as c:
            c.send(store_request("cas", key, value, exptime, cas) + delete_request([lock], True))
            if stored(c.readline()):
                return True, False
            c.send(store_request("add", lock, relock, ttl))
            return False, stored(c.readline())

    def delete_many(self, keys: list[str]) -> None:
        with self.pool.exchange() as c:
            c.send(delete_request(keys))
            for _ in keys:
                deleted(c.readline())

    def delete_unacknowledged(self, keys: list[str]) -> None:
        """``delete ... noreply``: sent, never waited for. Memcached answers a well-formed
        ``delete`` with ``noreply`` with nothing at all, success or not, so the connection
        stays in step; commands on the same connection run after it."""
        with self.pool.exchange() as c:
            c.send(delete_request(keys, noreply=True))

    def metadump(self) -> list[bytes]:
        """The lines of ``lru_crawler metadump all`` before END; a status line ends them.

        On a connection of its own (memcached refuses a metadump that arrives right behind
        another command, such as a ``delete ... noreply`` on a pooled connection). A metadump
        can take long on a big server: each line is bounded, not the whole."""
        lines: list[bytes] = []
        with self.pool.own_connection() as c:
            c.send(METADUMP)
            while (line := listed(c.readline_bounded())) != END:
                lines.append(line)
                if not line.startswith(b"key="):
                    break
        return lines

    def close(self) -> None:
        self.pool.close()


def _values(c: Connection) -> Found:
    """A ``gets`` reply: ``VALUE`` blocks up to ``END``."""
    found: Found = {}
    while (line := c.readline()) != END:
        key, size, cas = value_header(line)
        value = c.readexactly(size + 2)
        found[key] = (value[:-2], cas)
    return found
