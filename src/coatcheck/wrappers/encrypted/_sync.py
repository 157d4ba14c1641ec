# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""The encrypted store wrapper, written once for sync and asyncio code (see scripts/unasync.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from ...contract import LockRequest, Meta, ReadResult, Stored, as_stored
from ...crypto import Key, Keyring
from ...errors import ConfigError, VersionMismatch
from ...stores.base import Store
from .._inner import forward
from ._cipher import RecordCipher

log = logging.getLogger("coatcheck")


class EncryptedStore(Store):
    """Any store, with every payload encrypted and authenticated (AES-256-GCM) at rest.

    ``inner``: the store that keeps the bytes. ``keys``: newest first, raw bytes or base64url
    text of at least 32 bytes each, or a :class:`RecordCipher`; new records are sealed under
    the first key, records under any key are read. ``read_plaintext``: see
    :class:`RecordCipher` (off by default).

    A record that does not decrypt reads as :data:`UNREADABLE`, which the session engine
    treats as corrupt (a fresh session; the record is deleted). Locks, expiry, destroy, gc,
    count, scan and ids are the inner store's.
    """

    def __init__(
        self,
        inner: Store,
        keys: Key | Iterable[Key] | Keyring | RecordCipher,
        *,
        read_plaintext: bool = False,
    ) -> None:
        self.inner = inner
        if isinstance(keys, RecordCipher):
            self.cipher = keys
        else:
            self.cipher = RecordCipher(keys, read_plaintext=read_plaintext)
        self.shared = inner.shared
        self.expires_itself = inner.expires_itself
        # `coatcheck init`, the lock hand-over (Redis, PostgreSQL: waiters sleep until a
        # release, not poll), the end of a PHP-shaped handler's request: all the inner store's
        forward(self, inner, "create_schema", "wait_for_release", "end_request")
        # such a handler (coatcheck.handlers) opens once per request: each request gets the
        # inner store's view, wrapped with the same cipher
        request_scope = getattr(inner, "request_scope", None)
        if request_scope is not None:
            self.request_scope = lambda: type(self)(request_scope(), self.cipher)

    @property
    def clock(self) -> Callable[[], float]:
        """The inner store's clock: a manager's ``clock=`` reaches the store that uses it."""
        return self.inner.clock

    @clock.setter
    def clock(self, value: Callable[[], float]) -> None:
        self.inner.clock = value

    def create_id(self, id_bytes: int) -> str:
        return self.inner.create_id(id_bytes)

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

    def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return self.cipher.opened(key, self.inner.read(key, lock))

    def read_many(self, keys: list[str]) -> list[Stored | None]:
        """The inner store's :meth:`~coatcheck.stores.base.Store.read_many` (its batch
        query, where it has one), each record opened as :meth:`read` opens it (admin)."""
        got = self.inner.read_many(keys)
        return [as_stored(self.cipher.opened(k, g)) for k, g in zip(keys, got, strict=True)]

    def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        sealed = self.cipher.seal(key, payload)
        return self.inner.write(key, sealed, expires_at, expect=expect, token=token)

    def update_timestamp(self, key: str, expires_at: float, *, token: str | None = None) -> None:
        self.inner.update_timestamp(key, expires_at, token=token)

    def release(self, key: str, token: str) -> None:
        self.inner.release(key, token)

    def destroy(self, key: str) -> None:
        self.inner.destroy(key)

    def gc(self) -> int:
        return self.inner.gc()

    def validate_id(self, key: str) -> bool:
        return self.inner.validate_id(key)

    def count(self) -> int:
        return self.inner.count()

    def scan(self) -> Iterator[Meta]:
        """The inner store's metadata; ``size`` counts the sealed bytes (33 more per record)."""
        return self.inner.scan()


def reencrypt(
    store: Store,
    keys: Key | Iterable[Key] | None = None,
    *,
    read_plaintext: bool | None = None,
) -> int:
    """Rewrite every live record not sealed under the newest key; return how many were.

    ``store``: an :class:`EncryptedStore` (its keys are used unless ``keys`` is given),
    or the raw store beneath one, with ``keys``. ``read_plaintext``: also encrypt records
    written before encryption was on (default: the wrapper's setting, else off).

    Each record keeps its expiry, and is rewritten only if its version is still the one read
    (a write meanwhile wins, and sealed it afresh). Records no key opens are left alone and
    counted in a warning; a session that uses one gets a fresh session instead.
    """
    inner, cipher = _target(store, keys, read_plaintext)
    rewritten = unreadable = 0
    for meta in inner.scan():
        got = inner.read(meta.key)
        if not isinstance(got, Stored) or cipher.is_current(got.payload):
            continue
        if got.expires_at <= inner.clock():
            continue  # expired meanwhile: nothing to keep
        payload = cipher.open(meta.key, got.payload)
        if payload is None:
            unreadable += 1
            continue
        sealed = cipher.seal(meta.key, payload)
        try:
            inner.write(meta.key, sealed, got.expires_at, expect=got.version)
        except VersionMismatch:
            continue  # written (and sealed under the writer's newest key) meanwhile
        rewritten += 1
    if unreadable:
        log.warning("reencrypt: %d session record(s) did not decrypt; left as they are", unreadable)
    return rewritten


def _target(
    store: Store, keys: Key | Iterable[Key] | None, read_plaintext: bool | None
) -> tuple[Store, RecordCipher]:
    """The raw store to rewrite, and the cipher to rewrite it with."""
    if isinstance(store, EncryptedStore):
        inner, cipher = store.inner, store.cipher
        if keys is not None:
            cipher = RecordCipher(keys, read_plaintext=cipher.read_plaintext)
        if read_plaintext is not None:
            cipher = RecordCipher(cipher.keyring, read_plaintext=read_plaintext)
        return inner, cipher
    if keys is None:
        raise ConfigError(
            "reencrypt needs the keys: pass keys=, or an encrypted store (a store URL with "
            "?encrypt=env:VARIABLE)"
        )
    return store, RecordCipher(keys, read_plaintext=bool(read_plaintext))
