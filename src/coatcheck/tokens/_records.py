"""What the token services keep in a store, and the rules on it: no I/O in here.

Two kinds of record, each under one storage key (a domain-separated SHA-256, so neither a
raw refresh token nor a raw family id is ever a store key or a stored value):

- a refresh-token **family** (one login): its subject, the claims its access tokens carry,
  its absolute and idle deadlines, the hash of the one refresh token that is live, the
  hashes of the ones already exchanged (reuse detection), and the access tokens it issued
  that may still be live (so revoking the family revokes them too);
- a subject's **revocations**: a cut-off time (``revoke_all``) and the revoked ``jti``\\ s,
  each kept until the token it names would have expired anyway. One record per subject,
  so checking an access token costs one read.

Both are written with the store's version check (compare-and-set), never blindly.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from .. import ids
from ..contract import Stored
from ..errors import InvalidToken

SECRET_BYTES = 32  # 256 bits, from secrets
USED_HASH_CHARS = 32  # 128 bits of each exchanged token's hash are kept: enough to recognise it
_FAMILY = b"coatcheck/tokens/family\x00"
_SUBJECT = b"coatcheck/tokens/revoked\x00"


def family_key(family_id: str) -> str:
    """The storage key of a family: never the family id itself."""
    return hashlib.sha256(_FAMILY + family_id.encode("ascii")).hexdigest()


def subject_key(subject: str) -> str:
    """The storage key of a subject's revocations."""
    return hashlib.sha256(_SUBJECT + subject.encode("utf-8", "surrogatepass")).hexdigest()


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_refresh(family_id: str) -> tuple[str, str]:
    """A refresh token of ``family_id`` and the hash the family record keeps of it.

    The token is ``<family id>.<secret>``, each 32 random bytes in base64url: the family id
    finds the record, the secret proves possession.
    """
    secret = ids.new_id(SECRET_BYTES)
    return f"{family_id}.{secret}", secret_hash(secret)


def parse_refresh(token: object) -> tuple[str, str]:
    """``(family id, secret)`` of a well-formed refresh token; InvalidToken otherwise."""
    if isinstance(token, str) and len(token) == 2 * ids.id_length(SECRET_BYTES) + 1:
        family_id, _, secret = token.partition(".")
        if ids.is_well_formed(family_id, SECRET_BYTES) and ids.is_well_formed(secret, SECRET_BYTES):
            return family_id, secret
    raise InvalidToken("malformed refresh token")


@dataclass
class Family:
    """One login's chain of refresh tokens."""

    subject: str
    claims: dict[str, Any]
    created: float
    until: float  # absolute end: no refresh after it, however active the client
    idle_until: float  # the live refresh token's own expiry
    current: str  # hash of the live refresh token's secret
    used: list[str] = field(default_factory=list)
    previous: str = ""  # hash of the token exchanged last, and when: concurrent requests
    rotated_at: float = 0.0
    revoked: bool = False
    access: dict[str, float] = field(default_factory=dict)  # jti -> exp, issued and maybe live

    def deadline(self) -> float:
        """When the store may drop the record: nothing in it matters after that."""
        return min(self.until, self.idle_until)

    def is_current(self, digest: str) -> bool:
        return hmac.compare_digest(digest, self.current)

    def was_used(self, digest: str) -> bool:
        short = digest[:USED_HASH_CHARS]
        return any(hmac.compare_digest(short, seen) for seen in self.used)

    def just_exchanged(self, digest: str, now: float, grace: float) -> bool:
        """True for the token exchanged less than ``grace`` seconds ago: a request that
        raced the exchange, not a replay (see ``reuse_grace``)."""
        recent = self.previous and now - self.rotated_at < grace
        return bool(recent) and hmac.compare_digest(digest, self.previous)

    def rotate(self, old: str, new: str, now: float, idle_until: float, remember: int) -> None:
        self.used = [*self.used, old[:USED_HASH_CHARS]][-remember:]
        self.previous, self.rotated_at = old, now
        self.current = new
        self.idle_until = min(idle_until, self.until)

    def issued(self, jti: str, exp: float, now: float) -> None:
        self.access = {j: e for j, e in self.access.items() if e > now}
        self.access[jti] = exp

    def dump(self) -> bytes:
        return orjson.dumps(
            {
                "sub": self.subject,
                "claims": self.claims,
                "created": self.created,
                "until": self.until,
                "idle_until": self.idle_until,
                "current": self.current,
                "used": self.used,
                "previous": self.previous,
                "rotated_at": self.rotated_at,
                "revoked": self.revoked,
                "access": self.access,
            }
        )

    @classmethod
    def load(cls, stored: Stored | None, now: float) -> Family | None:
        """The family in ``stored``; None when missing, expired or unreadable."""
        if stored is None or stored.expires_at <= now:
            return None
        try:
            raw = orjson.loads(stored.payload)
            family = cls(
                subject=str(raw["sub"]),
                claims=dict(raw["claims"]),
                created=float(raw["created"]),
                until=float(raw["until"]),
                idle_until=float(raw["idle_until"]),
                current=str(raw["current"]),
                used=[str(u) for u in raw["used"]],
                previous=str(raw["previous"]),
                rotated_at=float(raw["rotated_at"]),
                revoked=bool(raw["revoked"]),
                access={str(j): float(e) for j, e in dict(raw["access"]).items()},
            )
        except (ValueError, TypeError, KeyError):
            return None
        return family if now < family.deadline() else None


@dataclass
class Revocations:
    """A subject's revoked access tokens."""

    cutoff: float | None = None  # tokens issued before it are refused (revoke_all)
    jtis: dict[str, float] = field(default_factory=dict)  # jti -> the token's exp
    unreadable: bool = False  # the stored record could not be read: refuse every token

    def refuses(self, claims: dict[str, Any]) -> str | None:
        """Why the token with ``claims`` is revoked, or None."""
        if self.unreadable:
            return "token revoked (the revocation record is unreadable)"
        if claims.get("jti") in self.jtis:
            return "token revoked"
        iat = claims.get("iat")
        if self.cutoff is not None and isinstance(iat, int | float) and iat < self.cutoff:
            return "token revoked (every token of this subject issued before a cut-off)"
        return None

    def refuses_family(self, family: Family) -> bool:
        return self.unreadable or (self.cutoff is not None and family.created < self.cutoff)

    def prune(self, now: float) -> None:
        self.jtis = {jti: exp for jti, exp in self.jtis.items() if exp > now}

    def deadline(self, keep_cutoff: float) -> float:
        """Until when the record matters: its last jti's expiry, or the cut-off plus the
        longest time a token or family issued before it could still be presented."""
        ends = list(self.jtis.values())
        if self.cutoff is not None:
            ends.append(self.cutoff + keep_cutoff)
        return max(ends, default=0.0)

    def dump(self) -> bytes:
        return orjson.dumps({"cutoff": self.cutoff, "jtis": self.jtis})

    @classmethod
    def load(cls, stored: Stored | None, now: float) -> Revocations | None:
        """The revocations in ``stored``; None when there are none.

        An unreadable record fails closed: every token is refused until the next
        revocation rewrites it, as a cut-off at that time (what was in it is lost).
        """
        if stored is None or stored.expires_at <= now:
            return None
        try:
            raw = orjson.loads(stored.payload)
            cutoff = raw["cutoff"]
            return cls(
                cutoff=None if cutoff is None else float(cutoff),
                jtis={str(j): float(e) for j, e in dict(raw["jtis"]).items()},
            )
        except (ValueError, TypeError, KeyError):
            return cls(cutoff=now, unreadable=True)


def new_family_id() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


@dataclass(frozen=True)
class TokenPair:
    """What ``login`` and ``refresh`` hand the client: a new access and refresh token."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_in: int  # seconds the access token lives
    refresh_expires_at: float  # Unix seconds: the refresh token's own expiry
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)

    def as_dict(self) -> dict[str, Any]:
        """The OAuth 2.0 token response body (RFC 6749 section 5.1)."""
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
        }
