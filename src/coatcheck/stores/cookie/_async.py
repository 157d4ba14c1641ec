"""The cookie store's I/O (the calls to its revocation list), written once for sync and
asyncio code (see scripts/unasync.py); every decision is :mod:`._common`'s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable

from ...config import Config
from ...contract import LockRequest, Meta, ReadResult
from ...crypto import Key, Keyring
from ..base import AsyncStore
from ._common import (
    _NOT_LISTED,
    _REVOKED,
    _THROUGH_A_MANAGER,
    COOKIE_LIMIT,
    REVOKE_FOR,
    _Cookies,
    _View,
)


class AsyncCookieView(_View, AsyncStore):
    """One request's view of its :class:`AsyncCookieStore`."""

    def __init__(
        self,
        owner: AsyncCookieStore,
        cookie_value: str | None,
        config: Config,
        current_id: Callable[[], str],
    ) -> None:
        self._revocations = owner.revocations
        revoking = owner.revocations is not None
        super().__init__(owner, cookie_value, config, current_id, owner.clock, revoking)
        self._store = owner
        self.clock = owner.clock

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        """The cookie's record (locks do not exist client-side: never LOCKED)."""
        if self._must_ask(key):
            assert self._revocations is not None
            self._answered(await self._revocations.validate_id(key))
        return self._stored(key)

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        version = self._put(key, payload, expires_at, expect)
        if version == 0:
            await self.destroy(key)
            return 1
        return version

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        self._touch(key, expires_at)

    async def release(self, key: str, token: str) -> None:
        pass  # no lock was taken

    async def destroy(self, key: str) -> None:
        until = self._drop(key)
        if until is not None and self._revocations is not None:
            await self._revocations.write(key, _REVOKED, until)

    async def gc(self) -> int:
        return await self._store.gc()

    async def validate_id(self, key: str) -> bool:
        return await self.read(key) is not None

    async def count(self) -> int:
        raise NotImplementedError(_NOT_LISTED)

    def scan(self) -> AsyncIterator[Meta]:
        raise NotImplementedError(_NOT_LISTED)


class AsyncCookieStore(_Cookies, AsyncStore):
    """Sessions sealed into their cookies.

    ``keys``: newest first (raw bytes or base64url text, at least 32 bytes each; see
    :func:`coatcheck.crypto.new_key`), or a :class:`~coatcheck.crypto.Keyring`.
    ``revocations``: a server store listing logged-out session ids (optional).
    """

    def __init__(
        self,
        keys: Key | Iterable[Key] | Keyring,
        *,
        revocations: AsyncStore | None = None,
        cookie_limit: int = COOKIE_LIMIT,
        revoke_for: float = REVOKE_FOR,
    ) -> None:
        super().__init__(keys, revocations, cookie_limit, revoke_for)
        self.revocations: AsyncStore | None = revocations

    def open_request(
        self, cookie_value: str | None, config: Config, current_id: Callable[[], str]
    ) -> AsyncCookieView:
        """This request's view: the session ``cookie_value`` carries, if it opens."""
        return AsyncCookieView(self, cookie_value, config, current_id)

    async def open(self) -> None:
        if self.revocations is not None:
            await self.revocations.open()

    async def close(self) -> None:
        if self.revocations is not None:
            await self.revocations.close()

    # The store itself holds no session: requests use their views.

    async def read(self, key: str, lock: LockRequest | None = None) -> ReadResult:
        return None

    async def write(
        self,
        key: str,
        payload: bytes,
        expires_at: float,
        *,
        expect: int | None = None,
        token: str | None = None,
    ) -> int:
        raise NotImplementedError(_THROUGH_A_MANAGER)

    async def update_timestamp(
        self, key: str, expires_at: float, *, token: str | None = None
    ) -> None:
        pass

    async def release(self, key: str, token: str) -> None:
        pass

    async def destroy(self, key: str) -> None:
        """Log out the session filed under ``key`` wherever its cookie is: revoke it for
        ``revoke_for`` seconds (nothing to do without a revocation list)."""
        if self.revocations is not None:
            await self.revocations.write(key, _REVOKED, self.clock() + self.revoke_for)

    async def gc(self) -> int:
        """Delete expired entries of the revocation list (0 without one)."""
        return 0 if self.revocations is None else await self.revocations.gc()

    async def validate_id(self, key: str) -> bool:
        return False  # a key alone names no session here: the cookie holds it

    async def count(self) -> int:
        raise NotImplementedError(_NOT_LISTED)

    def scan(self) -> AsyncIterator[Meta]:
        raise NotImplementedError(_NOT_LISTED)
