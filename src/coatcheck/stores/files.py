"""``file:///var/lib/app/sessions``: one file per session, for one machine.

PHP's default ``files`` save handler, with ``session.save_path`` as the URL's path
(``file://./sessions`` is relative to the working directory). Each session is
``<key>.session`` (the key is the SHA-256 of the id), mode 0600 (``?mode=640`` to change),
written to a temporary file and renamed into place. The file's mtime is its idle deadline,
so GC is a directory scan. A file lock on ``.coatcheck.lock`` guards each short
read-modify-write, across threads and processes; session locks are leases kept in the file
header, so a killed holder's lock simply runs out. Every directory the store creates is
0700; none is created before the first write.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import unquote, urlsplit

import orjson

from ..errors import ConfigError, StoreUnavailable
from ..ids import check_storage_key
from ..locks import Row
from ._rows import NO_ROWS, Part, RowAccess, Rows
from ._rows_async import AsyncRowStore
from ._rows_sync import RowStore
from ._url import Options
from .base import Meta

SCHEMES: tuple[str, ...] = ("file",)
EXTRA = ""

_SUFFIX = ".session"
_BATCH = 1000  # GC deletes this many files per hold of the store's file lock


def _load(path: Path) -> Row | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        blob = f.read()
    head, _, payload = blob.partition(b"\n")
    try:
        meta = orjson.loads(head)
        return Row(payload, float(meta["e"]), int(meta["v"]), meta.get("t"), float(meta["u"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        # A torn or foreign file: give it back as a payload the engine will reject.
        return Row(b"", 0.0, 0)


def _is_key(name: str) -> bool:
    try:
        check_storage_key(name)
    except ValueError:
        return False
    return True


def _make_private_dirs(directory: Path) -> None:
    """``mkdir -p`` with every directory it creates 0700 (``Path.mkdir(parents=True)`` would
    give the parents the umask's mode, typically 0755)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        with suppress(FileExistsError):
            os.mkdir(path, 0o700)


class _FileRows(Rows):
    def __init__(self, directory: Path, mode: int) -> None:
        self.directory = directory
        self.mode = mode

    def path(self, key: str) -> Path:
        return self.directory / (key + _SUFFIX)

    def get(self, key: str) -> Row | None:
        return _load(self.path(key))

    def put(self, key: str, row: Row, part: Part) -> None:
        head = orjson.dumps(
            {"e": row.expires_at, "v": row.version, "t": row.token, "u": row.lock_until}
        )
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(head + b"\n" + row.payload)
            os.chmod(tmp, self.mode)
            os.utime(tmp, (row.expires_at, row.expires_at))
            os.replace(tmp, self.path(key))
        except OSError as e:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise StoreUnavailable(f"file store: cannot write ({e.strerror})") from e
            raise

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(self.path(key))


class _Files(RowAccess):
    """Sessions as files in one directory."""

    def __init__(self, directory: str | os.PathLike[str], *, mode: int = 0o600) -> None:
        if not str(directory):
            raise ConfigError("file store needs a directory: file:///path/to/sessions")
        self.directory = Path(directory)
        self.mode = mode
        self._rows = _FileRows(self.directory, mode)
        self._mutex = self.directory / ".coatcheck.lock"

    @contextmanager
    def transaction(self, *, create: bool = False) -> Iterator[Rows]:
        fd = self._lock_file(create)
        if fd is None:
            yield NO_ROWS
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self._rows
        finally:
            os.close(fd)  # closing drops the flock

    def _lock_file(self, create: bool) -> int | None:
        """The open lock file; None when the directory does not exist and ``create`` is false."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
        try:
            try:
                return os.open(self._mutex, flags, 0o600)
            except FileNotFoundError:
                if not create:
                    return None
                _make_private_dirs(self.directory)
                return os.open(self._mutex, flags, 0o600)
        except OSError as e:
            raise StoreUnavailable(
                f"file store: cannot use the session directory ({e.strerror})"
            ) from e

    def _files(self) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(key, entry) for every session file; other files are left alone."""
        try:
            with os.scandir(self.directory) as entries:
                for entry in entries:
                    key = entry.name.removesuffix(_SUFFIX)
                    if key != entry.name and _is_key(key) and entry.is_file():
                        yield key, entry
        except FileNotFoundError:
            return

    def delete_expired(self, now: float) -> int:
        return sum(self.expired_batches(now))

    def expired_batches(self, now: float) -> Iterator[int]:
        """GC: list the expired files, then delete them ``_BATCH`` per hold of the store's
        file lock; yields each batch's count. Blocking, and free of thread state: each step
        may run in another worker thread."""
        due = []
        for key, entry in self._files():
            with suppress(FileNotFoundError):  # destroyed since the listing
                if entry.stat().st_mtime <= now:
                    due.append(key)
        for start in range(0, len(due), _BATCH):
            removed = 0
            with self.transaction() as rows:
                for key in due[start : start + _BATCH]:
                    row = rows.get(key)  # check again: it may have been renewed meanwhile
                    if row is not None and row.expires_at <= now:
                        rows.delete(key)
                        removed += 1
            yield removed

    def metas(self, now: float) -> list[Meta]:
        out = []
        for key, entry in self._files():
            row = _load(Path(entry.path))
            if row is not None and row.expires_at > now:
                out.append(Meta(key, row.expires_at, len(row.payload), row.locked(now)))
        return out


class FileStore(_Files, RowStore):
    """Sessions as files in one directory (created, 0700, by the first write)."""


class AsyncFileStore(_Files, AsyncRowStore):
    """:class:`FileStore` for asyncio: each call runs in a worker thread."""


def _parse(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    options = Options("file", parts.query)
    mode = options.text("mode", "600")
    options.done()
    try:
        permissions = int(mode, 8)
    except ValueError:
        permissions = -1
    if not 0 <= permissions <= 0o777:
        raise ConfigError("file store option mode must be octal permissions, e.g. mode=600")
    return unquote(parts.netloc + parts.path), permissions


def open_sync(url: str) -> FileStore:
    directory, mode = _parse(url)
    return FileStore(directory, mode=mode)


def open_async(url: str) -> AsyncFileStore:
    directory, mode = _parse(url)
    return AsyncFileStore(directory, mode=mode)
