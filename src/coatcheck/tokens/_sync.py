# Generated from _async.py by scripts/unasync.py: edit that file, then run `make unasync`.
"""Refresh tokens with rotation and reuse detection, and revocation, kept in any store.

This file is the asyncio source; ``_sync.py`` is generated from it (``make unasync``).
Every record is read, changed and written back with the store's version check, so two
requests racing on one record never both succeed: the store decides, not a Python lock,
and that holds across processes and hosts. See :mod:`coatcheck.tokens._records` for the
records and docs/tokens.md for the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .. import ids
from ..contract import MUST_CREATE, as_stored
from ..errors import (
    ConfigError,
    Conflict,
    IdCollision,
    InvalidToken,
    TokenReused,
    VersionMismatch,
)
from ..stores import open_store
from ..stores.base import Store
from ._records import (
    SECRET_BYTES,
    Family,
    Revocations,
    TokenPair,
    family_key,
    new_family_id,
    new_refresh,
    parse_refresh,
    secret_hash,
    subject_key,
)
from .access import AccessTokens

DAY = 86400.0
ATTEMPTS = 16  # compare-and-set retries on a revocation record before giving up (Conflict)


class Tokens:
    """Access tokens checked against revocations, and rotating refresh tokens, in a store.

    ``store``: any coatcheck store or its URL (``redis://…``, ``postgresql://…``,
    ``sqlite:///tokens.db``…); one given as a URL is opened here, follows the clock of
    ``access`` and is closed by :meth:`close`. ``refresh_lifetime``: seconds a refresh
    token lives unused (each refresh issues a new one). ``family_lifetime``: seconds after
    login when refreshing stops for good, however active the client (log in again).
    ``remember_used``: how many exchanged refresh tokens of a login are remembered to
    detect their reuse; an older one is refused, without revoking anything.
    ``reuse_grace``: seconds during which the refresh token exchanged last is refused as a
    concurrent request (two tabs refreshing at once) instead of revoking the login as a
    reuse; 0 turns the grace off.
    """

    def __init__(
        self,
        store: Store | str,
        access: AccessTokens,
        *,
        refresh_lifetime: float = 14 * DAY,
        family_lifetime: float = 30 * DAY,
        remember_used: int = 64,
        reuse_grace: float = 2.0,
    ) -> None:
        if not 0 < refresh_lifetime <= family_lifetime:
            raise ConfigError("0 < refresh_lifetime <= family_lifetime is required")
        if remember_used < 1:
            raise ConfigError("remember_used must be at least 1")
        if not 0 <= reuse_grace <= 60:
            raise ConfigError("reuse_grace is between 0 and 60 seconds")
        self.access = access
        self.clock = access.clock
        self._owns_store = isinstance(store, str)
        self.store = open_store(store) if isinstance(store, str) else store
        if self._owns_store:
            self.store.clock = self.clock
        self.refresh_lifetime = float(refresh_lifetime)
        self.family_lifetime = float(family_lifetime)
        self.remember_used = remember_used
        self.reuse_grace = float(reuse_grace)
        # a cut-off must outlive every token and family issued before it
        self._keep_cutoff = max(float(access.lifetime), self.family_lifetime) + access.leeway

    def close(self) -> None:
        """Close the store, if it was opened here from a URL."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Tokens:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- access tokens ------------------------------------------------------------------

    def verify(self, token: object) -> dict[str, Any]:
        """The claims of a valid, unrevoked access token; InvalidToken otherwise.

        One store read: the token's subject's revocations (its own ``jti``, and any
        ``revoke_all`` cut-off), so a revoked token is refused from the next request on.
        """
        claims = self.access.verify(token)
        revocations = self._revocations(claims["sub"])
        reason = revocations.refuses(claims) if revocations is not None else None
        if reason is not None:
            raise InvalidToken(reason)
        return claims

    def revoke(self, claims: Mapping[str, Any]) -> None:
        """Revoke one access token (the claims :meth:`verify` returned) until it expires."""
        subject, jti, exp = _identity(claims)
        self._update_revocations(subject, lambda r: r.jtis.__setitem__(jti, exp))

    def revoke_all(self, subject: str) -> None:
        """Refuse every access token issued to ``subject`` before now, and every login
        (refresh-token family) started before now. Tokens issued afterwards work.

        ``iat`` has one-second resolution, so a token issued later in the same second is
        refused too: safe, and a client simply logs in again.
        """
        now = self.clock()

        def cut(r: Revocations) -> None:
            r.cutoff = max(r.cutoff or now, now)

        self._update_revocations(subject, cut)

    def logout(self, claims: Mapping[str, Any], refresh_token: str | None = None) -> None:
        """Revoke this access token and its whole login: the refresh-token family named by
        its ``sid`` claim (with every access token the family issued), and the family of
        ``refresh_token`` when given (a client may hold tokens of two logins)."""
        subject, jti, exp = _identity(claims)
        revoked = {jti: exp}
        sid = claims.get("sid")
        if isinstance(sid, str) and ids.is_well_formed(sid, SECRET_BYTES):
            owner, live = self._revoke_family(family_key(sid))
            if owner == subject:  # the signed sid is its own proof of possession
                revoked |= live
        self._update_revocations(subject, lambda r: r.jtis.update(revoked))
        if refresh_token is not None:
            self.revoke_refresh(refresh_token)

    # --- refresh tokens -----------------------------------------------------------------

    def login(self, subject: str, claims: Mapping[str, Any] | None = None) -> TokenPair:
        """Start a login for ``subject``: a new refresh-token family and its first tokens.

        ``claims``: extra claims (JSON types) every access token of this login carries.
        """
        now = self.clock()
        family_id = new_family_id()
        refresh, digest = new_refresh(family_id)
        family = Family(
            subject=subject,
            claims=dict(claims or {}),
            created=now,
            until=now + self.family_lifetime,
            idle_until=now + self.refresh_lifetime,
            current=digest,
        )
        access = self._issue(family, family_id, now)
        try:
            self.store.write(
                family_key(family_id), family.dump(), family.deadline(), expect=MUST_CREATE
            )
        except VersionMismatch:
            raise IdCollision("a new token family id was already in use; retry") from None
        return self._pair(access, refresh, family)

    def refresh(self, refresh_token: object) -> TokenPair:
        """Exchange a refresh token for a new pair; the one given is then used up.

        InvalidToken when it is malformed, unknown, expired, revoked, or was exchanged by a
        concurrent request a moment ago; :class:`~coatcheck.errors.TokenReused` (and the
        whole family revoked, access tokens included) when it was exchanged before.
        """
        family_id, secret = parse_refresh(refresh_token)
        key = family_key(family_id)
        stored = as_stored(self.store.read(key))
        now = self.clock()
        family = Family.load(stored, now)
        if family is None or stored is None:
            raise InvalidToken("unknown or expired refresh token")
        if family.revoked:
            raise InvalidToken("refresh token revoked")
        digest = secret_hash(secret)
        if not family.is_current(digest):
            if family.just_exchanged(digest, now, self.reuse_grace):
                raise InvalidToken("refresh token already used by a concurrent request")
            if family.was_used(digest):
                self._revoke_jtis(*self._revoke_family(key))
                raise TokenReused("refresh token reused: every token of its login is revoked")
            raise InvalidToken("unknown or expired refresh token")
        revocations = self._revocations(family.subject)
        if revocations is not None and revocations.refuses_family(family):
            raise InvalidToken("refresh token revoked")
        new_token, new_digest = new_refresh(family_id)
        family.rotate(digest, new_digest, now, now + self.refresh_lifetime, self.remember_used)
        access = self._issue(family, family_id, now)
        try:
            self.store.write(key, family.dump(), family.deadline(), expect=stored.version)
        except VersionMismatch:
            raise InvalidToken("refresh token already used by a concurrent request") from None
        return self._pair(access, new_token, family)

    def revoke_refresh(self, refresh_token: str) -> None:
        """Revoke the login a refresh token belongs to (all its tokens, access included).

        The token must be the login's live refresh token or one it exchanged (a family id
        alone revokes nothing); InvalidToken otherwise. A login already gone is a no-op.
        """
        self._revoke_jtis(*self._revoke_family(*self._family_of(refresh_token)))

    # --- the store ----------------------------------------------------------------------

    def _issue(self, family: Family, family_id: str, now: float) -> str:
        claims = self.access.claims_for(family.subject, family.claims, sid=family_id)
        family.issued(claims["jti"], float(claims["exp"]), now)
        return self.access.encode(claims)

    def _pair(self, access: str, refresh: str, family: Family) -> TokenPair:
        return TokenPair(access, refresh, self.access.lifetime, family.idle_until)

    def _family_of(self, refresh_token: str) -> tuple[str, str]:
        """The family's storage key and the hash of the token's secret."""
        family_id, secret = parse_refresh(refresh_token)
        return family_key(family_id), secret_hash(secret)

    def _revocations(self, subject: str) -> Revocations | None:
        got = self.store.read(subject_key(subject))
        return Revocations.load(as_stored(got), self.clock())

    def _revoke_family(
        self, key: str, proof: str | None = None
    ) -> tuple[str | None, dict[str, float]]:
        """Mark the family under ``key`` revoked (compare-and-set); return its subject and
        its access tokens that may still be live, or ``(None, {})`` when it is gone.

        ``proof``: the hash of a refresh token's secret, which must be the family's live
        one or one it exchanged, else InvalidToken: a family id alone revokes nothing.
        """
        for _ in range(ATTEMPTS):
            stored = as_stored(self.store.read(key))
            family = Family.load(stored, self.clock())
            if family is None or stored is None:
                return None, {}
            if proof is not None and not (family.is_current(proof) or family.was_used(proof)):
                raise InvalidToken("unknown or expired refresh token")
            if not family.revoked:
                family.revoked = True
                try:
                    self.store.write(key, family.dump(), family.deadline(), expect=stored.version)
                except VersionMismatch:
                    continue  # rotated meanwhile: revoke what is there now
            return family.subject, family.access
        raise Conflict("the token family kept changing while being revoked; try again")

    def _revoke_jtis(self, subject: str | None, jtis: dict[str, float]) -> None:
        if subject is not None and jtis:
            self._update_revocations(subject, lambda r: r.jtis.update(jtis))

    def _update_revocations(self, subject: str, change: Callable[[Revocations], None]) -> None:
        key = subject_key(subject)
        for _ in range(ATTEMPTS):
            stored = as_stored(self.store.read(key))
            now = self.clock()
            revocations = Revocations.load(stored, now) or Revocations()
            change(revocations)
            revocations.prune(now)
            deadline = revocations.deadline(self._keep_cutoff)
            if deadline <= now and stored is None:
                return  # nothing left to remember (every token named has expired)
            expect = MUST_CREATE if stored is None else stored.version
            try:
                self.store.write(key, revocations.dump(), max(deadline, now), expect=expect)
                return
            except VersionMismatch:
                continue
        raise Conflict("the revocation record kept changing under concurrent updates; try again")


def _identity(claims: Mapping[str, Any]) -> tuple[str, str, float]:
    """``(sub, jti, exp)`` of verified access-token claims."""
    subject, jti, exp = claims.get("sub"), claims.get("jti"), claims.get("exp")
    if not isinstance(subject, str) or not isinstance(jti, str):
        raise InvalidToken("the claims lack sub or jti: pass the claims verify() returned")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise InvalidToken("the claims lack exp: pass the claims verify() returned")
    return subject, jti, float(exp)
