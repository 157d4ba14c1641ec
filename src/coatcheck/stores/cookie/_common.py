"""What the sync and async cookie stores share: the seal, the keys and limits, each request's
decisions, and the URL. No I/O here: ``_async.py`` adds the calls to the revocation list.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import re
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from ... import ids, record
from ...config import Config
from ...contract import MUST_CREATE, Stored
from ...cookies import CookieAction, set_cookie
from ...crypto import Key, Keyring, keys_from_env
from ...errors import ConfigError, CookieTooLarge, VersionMismatch
from .._url import Options
from ..base import AsyncStore, Store

PURPOSE: Final = "coatcheck cookie store"
"""The keyring's purpose label: a key shared with another use yields unrelated AEAD keys."""
COOKIE_LIMIT: Final = 4096
"""Bytes of a cookie's name, value and attributes every browser keeps (RFC 6265, 6.1)."""
REVOKE_FOR: Final = 31 * 86400.0
"""Default seconds a key revoked by :meth:`CookieStore.destroy` alone stays revoked."""

_AAD = b"coatcheck/cookie-store/v1"  # bound into every seal, beside the keyring's purpose
_HEAD = struct.Struct(">dB")  # the idle deadline, then the length of the id
_TEXT = re.compile(r"[A-Za-z0-9_-]+")
_WIDEST_MAX_AGE = 10**10 - 1  # the size check counts the widest Max-Age and Expires
_REVOKED = b"revoked"
_NOT_LISTED = (
    "cookie:// keeps each session in its browser's cookie: the server cannot count or list "
    "sessions; use a server-side store (sqlite://, redis://, ...) to get that"
)
_THROUGH_A_MANAGER = (
    "cookie:// stores a session only in its cookie: use it through a SessionManager (or a "
    "web adapter), which gives each request its own view; it cannot be wrapped by another "
    "store (its cookies are encrypted already: drop ?encrypt= from the URL)"
)


@dataclass(slots=True)
class _Record:
    """The one record a request's cookie carries: what a server store would hold."""

    sid: str
    key: str
    payload: bytes
    expires_at: float
    version: int = 1


def seal(keyring: Keyring, sid: str, payload: bytes, expires_at: float) -> str:
    """The cookie value carrying a session: base64url, without padding."""
    raw_id = sid.encode("ascii")
    plain = b"".join((_HEAD.pack(expires_at, len(raw_id)), raw_id, payload))
    return base64.urlsafe_b64encode(keyring.seal(plain, _AAD)).rstrip(b"=").decode("ascii")


def unseal(keyring: Keyring, value: str | None, id_bytes: int) -> tuple[_Record, bool] | None:
    """The record in a cookie value and whether its key is the newest; None when it does
    not open (fails closed: never an exception)."""
    if not value or len(value) > COOKIE_LIMIT or not _TEXT.fullmatch(value):
        return None  # longer than any cookie we send, or not base64url
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    plain = keyring.open(raw, _AAD)
    if plain is None or len(plain) < _HEAD.size:
        return None
    expires_at, length = _HEAD.unpack_from(plain)
    start = _HEAD.size + length
    try:
        sid = plain[_HEAD.size : start].decode("ascii")
    except UnicodeDecodeError:
        return None
    if not math.isfinite(expires_at) or not ids.is_well_formed(sid, id_bytes):
        return None  # sealed by us, so only a bug or a changed id_bytes gets here
    return _Record(sid, ids.storage_key(sid), plain[start:], expires_at), keyring.is_current(raw)


class _Cookies:
    """What the sync and async cookie stores share: the keys and the limits."""

    client_side: Final = True
    """Each request gets a view of its own (:meth:`CookieStore.open_request`)."""
    shared = True  # every process with the keys opens every cookie

    revocations: Store | AsyncStore | None

    def __init__(
        self,
        keys: Key | Iterable[Key] | Keyring,
        revocations: Store | AsyncStore | None,
        cookie_limit: int,
        revoke_for: float,
    ):
        if isinstance(revocations, _Cookies):
            raise ConfigError("the revocation list must be a server store, not cookie://")
        self.revocations = revocations
        # GC draws only when the revocation list has expired entries to delete itself
        self.expires_itself = revocations is None or revocations.expires_itself
        self.keyring = keys if isinstance(keys, Keyring) else Keyring(keys, purpose=PURPOSE)
        if not 0 < cookie_limit <= COOKIE_LIMIT:
            raise ConfigError(f"cookie_limit must be between 1 and {COOKIE_LIMIT} bytes")
        if not (math.isfinite(revoke_for) and revoke_for > 0):
            raise ConfigError("revoke_for must be a finite number of seconds > 0")
        self.cookie_limit = cookie_limit
        self.revoke_for = revoke_for
        self._clock: Callable[[], float] = time.time

    @property
    def clock(self) -> Callable[[], float]:
        """The app's clock; a manager's ``clock=`` reaches the revocation list too, so the
        cookies and the list expire alike."""
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        if self.revocations is not None:
            self.revocations.clock = clock


class _View:
    """One request's cookie://: the record its cookie carried, held in memory.

    The decisions of the sync and async views; they add only the calls to the revocation
    list. ``current_id`` gives the id of the session being saved (writes carry only the
    key, a hash of it, and the cookie must carry the id itself).
    """

    def __init__(
        self,
        owner: _Cookies,
        cookie_value: str | None,
        config: Config,
        current_id: Callable[[], str],
        clock: Callable[[], float],
        revocations: bool,
    ) -> None:
        self._owner = owner
        self._config = config
        self._current_id = current_id
        self._clock = clock
        opened = unseal(owner.keyring, cookie_value, config.id_bytes)
        self._opened = opened[0] if opened else None
        self._current = self._opened  # what the cookie will carry
        self._known = {self._opened.key: self._opened} if self._opened else {}
        self._revoked: bool | None = None if revocations else False  # None: not asked yet
        self._revoking = revocations
        self._gone: set[str] = set()  # keys revoked in this request
        self.sid: str | None = self._opened.sid if self._opened else None
        """The id inside the cookie, or None when the cookie did not open."""
        self.stale = opened is not None and not opened[1]
        """The cookie was sealed under an older key: re-seal it even if nothing changes."""
        self.sealed: str | None = None
        """The cookie value to send: sealed at the last write or touch (None: send none)."""
        self.value: str | None = cookie_value if opened else None
        """The cookie value carrying the session now: as presented, or as sealed since."""

    # --- decisions ------------------------------------------------------------------------

    def _found(self, key: str) -> _Record | None:
        current = self._current
        return current if current is not None and current.key == key else None

    def _must_ask(self, key: str) -> bool:
        """Reading ``key`` needs the revocation list: the cookie's own record, not asked
        about yet, not expired (an expired one is refused anyway)."""
        rec = self._found(key)
        return (
            rec is not None
            and rec is self._opened
            and self._revoked is None
            and rec.expires_at > self._clock()
        )

    def _answered(self, revoked: bool) -> None:
        self._revoked = revoked
        if revoked:  # logged out: as if a server store had deleted it
            self._current = self.value = None

    def _stored(self, key: str) -> Stored | None:
        rec = self._found(key)
        return None if rec is None else Stored(rec.payload, rec.expires_at, rec.version)

    def _put(self, key: str, payload: bytes, expires_at: float, expect: int | None) -> int:
        """Write into the cookie; 0 when ``key`` belongs to an id regenerate_id retired (a
        tombstone: no cookie can forward to the new id, so the old one is revoked)."""
        current = self._found(key)
        if current is not None:
            if expect == MUST_CREATE or (expect is not None and 0 < expect != current.version):
                raise VersionMismatch("the session in the cookie changed in this request")
            rec = _Record(current.sid, key, payload, expires_at, current.version + 1)
        else:
            sid = self._current_id()
            if ids.storage_key(sid) != key:
                return 0
            if expect is not None and expect != MUST_CREATE:
                raise VersionMismatch("the session is no longer in the cookie")
            rec = _Record(sid, key, payload, expires_at)
        self.sealed = self.value = self._seal(rec)  # CookieTooLarge changes nothing
        self._current = self._known[key] = rec
        return rec.version

    def _touch(self, key: str, expires_at: float) -> None:
        current = self._found(key)
        if current is not None:
            rec = dataclasses.replace(current, expires_at=expires_at)
            self.sealed = self.value = self._seal(rec)
            self._current = self._known[key] = rec

    def _seal(self, rec: _Record) -> str:
        value = seal(self._owner.keyring, rec.sid, rec.payload, rec.expires_at)
        # the whole Set-Cookie line, with the widest Max-Age and Expires it could get
        line = set_cookie(self._config, CookieAction(value, _WIDEST_MAX_AGE), now=0)
        if len(line) > self._owner.cookie_limit:
            raise CookieTooLarge(len(line), self._owner.cookie_limit)
        return value

    def _drop(self, key: str) -> float | None:
        """Take ``key``'s record out of the cookie; until when the id must be revoked
        (None: no revocation list, or nothing a replayed cookie could still open)."""
        if self._found(key) is not None:
            self._current = self.sealed = self.value = None
        if not self._revoking or key in self._gone:
            return None
        now = self._clock()
        rec = self._known.get(key)
        until = now + self._config.absolute_timeout if rec is None else self._hard_cap(rec, now)
        if (rec is not None and rec.expires_at <= now) or until <= now:
            return None  # expired: the engine refuses every copy of it already
        self._gone.add(key)
        return until

    def _hard_cap(self, rec: _Record, now: float) -> float:
        """The session's absolute deadline: no cookie of its id opens after it, while a
        later cookie of the same id (another request's) may carry a later idle deadline."""
        try:
            header, _ = record.unpack(rec.payload)
        except ValueError:
            return now + self._config.absolute_timeout
        return header.created + (header.absolute or self._config.absolute_timeout)


# --- URLs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    keys: list[str] = dataclasses.field(repr=False)
    revocations: str | None
    cookie_limit: int
    revoke_for: float


def _parse(url: str) -> _Settings:
    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/"):
        raise ConfigError(
            "a cookie:// store URL names no host or path: write cookie://?keys=env:VARIABLE"
        )
    options = Options("cookie", parts.query)
    source = options.optional("keys")
    kind, _, name = (source or "").partition(":")
    if kind != "env" or not name:
        raise ConfigError(
            "cookie store option keys takes env:VARIABLE, the environment variable holding "
            "the keys (keys never go in a URL): cookie://?keys=env:COATCHECK_COOKIE_KEYS"
        )
    revocations = options.optional("revocations") or None
    if revocations is not None and urlsplit(revocations).scheme.lower() == "cookie":
        raise ConfigError("cookie store option revocations must name a server store")
    settings = _Settings(
        keys_from_env(name),
        revocations,
        options.whole("cookie_limit", str(COOKIE_LIMIT)),
        options.number("revoke_for", str(REVOKE_FOR)),
    )
    options.done()
    return settings
