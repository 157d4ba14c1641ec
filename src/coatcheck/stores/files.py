"""``file:///var/lib/app/sessions``: one file per session, for one machine.

Each session is ``<key>.session`` (the key is the SHA-256 of the id), mode 0600, written
to a temporary file and renamed into place. The file's mtime is its idle deadline, so GC
is a directory scan. A file lock on ``.coatcheck.lock`` guards each short read-modify-
write, across threads and processes; session locks are leases kept in the file header,
so a killed holder's lock simply runs out.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import orjson

from ..errors import ConfigError, StoreUnavailable
from ..locks import Row
from .base import Meta
from .rows import Part, Rows, RowStore

_KEY = re.compile(r"[0-9a-f]{64}")
_SUFFIX = ".session"


def _path(directory: Path, key: str) -> Path:
    if not _KEY.fullmatch(key):  # keys are hashes; anything else is a caller's bug
        raise ValueError("file store keys must be 64 lowercase hex characters")
    return directory / (key + _SUFFIX)


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


class _FileRows(Rows):
    def __init__(self, store: FileStore) -> None:
        self.store = store

    def get(self, key: str) -> Row | None:
        return _load(_path(self.store.directory, key))

    def put(self, key: str, row: Row, part: Part) -> None:
        self.store.save(key, row)

    def delete(self, key: str) -> None:
        with suppress(FileNotFoundError):
            os.unlink(_path(self.store.directory, key))


class FileStore(RowStore):
    """Sessions as files in one directory (created 0700 if missing)."""

    scheme = "file"

    def __init__(self, directory: str | os.PathLike[str], *, mode: int = 0o600) -> None:
        if not str(directory):
            raise ConfigError("file store needs a directory: file:///path/to/sessions")
        self.directory = Path(directory)
        self.mode = mode
        self._mutex = self.directory / ".coatcheck.lock"

    def open(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise StoreUnavailable(f"file store: cannot create the session directory ({e})") from e

    @contextmanager
    def transaction(self) -> Iterator[Rows]:
        try:
            fd = os.open(self._mutex, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except FileNotFoundError:
            self.open()
            fd = os.open(self._mutex, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise StoreUnavailable(f"file store: cannot open the lock file ({e.strerror})") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield _FileRows(self)
        finally:
            os.close(fd)  # closing drops the flock

    def save(self, key: str, row: Row) -> None:
        head = orjson.dumps(
            {"e": row.expires_at, "v": row.version, "t": row.token, "u": row.lock_until}
        )
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(head + b"\n" + row.payload)
            os.chmod(tmp, self.mode)
            os.utime(tmp, (row.expires_at, row.expires_at))
            os.replace(tmp, _path(self.directory, key))
        except OSError as e:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise StoreUnavailable(f"file store: cannot write ({e.strerror})") from e
            raise

    def _entries(self) -> Iterator[os.DirEntry[str]]:
        try:
            with os.scandir(self.directory) as it:
                yield from (e for e in it if e.name.endswith(_SUFFIX) and e.is_file())
        except FileNotFoundError:
            return

    def expired(self, now: float) -> list[str]:
        return [e.name[: -len(_SUFFIX)] for e in self._entries() if e.stat().st_mtime <= now]

    def metas(self, now: float) -> Iterator[Meta]:
        for entry in self._entries():
            row = _load(Path(entry.path))
            if row is not None and row.expires_at > now:
                key = entry.name[: -len(_SUFFIX)]
                yield Meta(key, row.expires_at, len(row.payload), row.locked(now))
