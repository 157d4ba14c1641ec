"""Access tokens: short-lived JWTs (RFC 7519), signed with PyJWT, checked as RFC 8725 asks.

:meth:`AccessTokens.issue` signs with the first key of the key set (the newest);
:meth:`AccessTokens.verify` accepts a token signed by any key still listed (rotation), and
raises :class:`~coatcheck.errors.InvalidToken` for every token it refuses, with a reason
safe to send back. The checks run in this order, the cheap and unauthenticated ones first:

1. size (``max_bytes``) and shape (three non-empty base64url segments), before any parsing;
2. the header: ``alg: none`` in any letter case, an unknown ``kid``, an ``alg`` other than
   the one the ``kid``'s key was made for, a ``crit`` header, a ``typ`` other than
   ``at+jwt`` (RFC 9068);
3. the signature, with that key and that algorithm only (PyJWT's ``algorithms=`` allowlist
   of exactly one entry);
4. the claims: ``exp``, ``iat``, ``sub``, ``jti`` required, ``typ`` must be ``"access"``,
   ``iss`` and ``aud`` when configured, ``exp``/``nbf``/``iat`` against the clock with
   ``leeway`` seconds of skew allowed.

This module does no I/O: revocation (a store lookup per request) is
:class:`coatcheck.tokens.Tokens` / :class:`~coatcheck.tokens.AsyncTokens`.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import jwt
import orjson
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from ..errors import ConfigError, InvalidToken
from .keys import Key

ACCESS: Final = "access"
"""The ``typ`` claim of an access token (a refresh token is opaque, not a JWT)."""
HEADER_TYP: Final = "at+jwt"
"""The ``typ`` header of an access token (RFC 9068)."""
MAX_TOKEN: Final = 8192
"""Characters: a longer token is refused before it is parsed."""
DEFAULT_LIFETIME: Final = 900
MAX_LEEWAY: Final = 300.0
RESERVED: Final = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "typ", "sid"})

_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_REQUIRED = ["exp", "iat", "sub", "jti", "typ"]


class AccessTokens:
    """Issue and verify access tokens with a key set; no store, no I/O.

    ``keys``: one :class:`~coatcheck.tokens.Key` or a list, newest first: the first signs,
    all verify. To rotate, put a new key first and keep the old one listed for one
    ``lifetime``; then drop it, and the tokens it signed are refused. ``issuer`` /
    ``audience``: written into every token and required on every token verified.
    ``lifetime``: seconds an access token lives (keep it short: minutes). ``leeway``:
    seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat`` (at most 300).
    ``clock``: Unix seconds, injectable for tests.
    """

    def __init__(
        self,
        keys: Key | Sequence[Key],
        *,
        issuer: str | None = None,
        audience: str | None = None,
        lifetime: int = DEFAULT_LIFETIME,
        leeway: float = 30.0,
        max_bytes: int = MAX_TOKEN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        listed = [keys] if isinstance(keys, Key) else list(keys)
        if not listed or not all(isinstance(k, Key) for k in listed):
            raise ConfigError("AccessTokens needs at least one Key (newest first)")
        self.keys: dict[str, Key] = {}
        for key in listed:
            if key.kid in self.keys:
                raise ConfigError(f"two keys share the key id {key.kid!r}")
            self.keys[key.kid] = key
        self.signing = listed[0]
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
            raise ConfigError("lifetime is a whole number of seconds greater than 0")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ConfigError(f"leeway is between 0 and {MAX_LEEWAY:g} seconds")
        if max_bytes < 256:
            raise ConfigError("max_bytes below 256 would refuse every token")
        for name, value in (("issuer", issuer), ("audience", audience)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} is a non-empty string or None")
        self.issuer = issuer
        self.audience = audience
        self.lifetime = lifetime
        self.leeway = float(leeway)
        self.max_bytes = max_bytes
        self.clock = clock
        self._jws = jwt.PyJWS()
        self._jwt = jwt.PyJWT(
            {
                "verify_signature": True,
                # the clock checks are ours (an injectable clock, numbers not booleans)
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": True,
                "verify_iss": True,
                "require": _REQUIRED + [n for n, v in (("iss", issuer), ("aud", audience)) if v],
            }
        )

    # --- issuing ------------------------------------------------------------------------

    def issue(
        self, subject: str, claims: Mapping[str, Any] | None = None, *, sid: str | None = None
    ) -> str:
        """A signed access token for ``subject`` carrying the extra ``claims`` (JSON types).

        ``sid`` ties the token to a refresh-token family (set by ``Tokens.login``/``refresh``,
        so ``logout`` can revoke both). The registered claims are set here and cannot be
        given in ``claims``.
        """
        return self.encode(self.claims_for(subject, claims, sid=sid))

    def claims_for(
        self, subject: str, claims: Mapping[str, Any] | None = None, *, sid: str | None = None
    ) -> dict[str, Any]:
        """The claims :meth:`issue` would sign, with a fresh ``jti`` and the clock's time."""
        if not isinstance(subject, str) or not subject:
            raise ValueError("the subject (sub) is a non-empty string")
        extra = dict(claims or {})
        clash = sorted(RESERVED & extra.keys())
        if clash:
            raise ValueError(f"claims {', '.join(clash)} are set by coatcheck, not by the caller")
        now = int(self.clock())
        out: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + self.lifetime}
        out["jti"] = secrets.token_urlsafe(16)
        out["typ"] = ACCESS
        if self.issuer is not None:
            out["iss"] = self.issuer
        if self.audience is not None:
            out["aud"] = self.audience
        if sid is not None:
            out["sid"] = sid
        out.update(extra)
        return out

    def encode(self, claims: Mapping[str, Any]) -> str:
        """Sign ``claims`` as they are with the newest key (see :meth:`claims_for`)."""
        key = self.signing
        payload = orjson.dumps(dict(claims))  # JSON types only, and a TypeError otherwise
        headers = {"kid": key.kid, "typ": HEADER_TYP}
        token = self._jws.encode(payload, key.signing_key(), key.algorithm, headers)
        if len(token) > self.max_bytes:
            raise ValueError(
                f"the token has {len(token)} characters; max_bytes is {self.max_bytes}"
            )
        return token

    # --- verifying ----------------------------------------------------------------------

    def verify(self, token: object) -> dict[str, Any]:
        """The claims of a valid access token; :class:`InvalidToken` for anything else.

        Never raises anything else for a bad token: tampered, truncated, malformed,
        oversized, expired, for another audience or issuer, of another type, or signed with
        a key or an algorithm this key set does not hold.
        """
        if not isinstance(token, str):
            raise InvalidToken("malformed token")
        if len(token) > self.max_bytes:
            raise InvalidToken("token too large")
        if not _SHAPE.fullmatch(token):
            raise InvalidToken("malformed token")
        key = self._key_for(_header(token))
        claims = self._decode(token, key)
        self._check_claims(claims)
        return claims

    def _key_for(self, header: dict[str, Any]) -> Key:
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise InvalidToken("malformed token header")
        if alg.strip().lower() == "none":
            raise InvalidToken("unsigned tokens (alg none) are refused")
        if "crit" in header:
            raise InvalidToken("unsupported critical header")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in (HEADER_TYP, "application/at+jwt"):
            raise InvalidToken("wrong token type")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown key id")
        if alg != key.algorithm:  # one algorithm per key: no HS/EdDSA or HS/ES confusion
            raise InvalidToken("algorithm not allowed for this key")
        return key

    def _decode(self, token: str, key: Key) -> dict[str, Any]:
        try:
            claims = self._jwt.decode(
                token,
                key.verifying_key(),
                algorithms=[key.algorithm],
                audience=self.audience,
                issuer=self.issuer,
            )
        except jwt.PyJWTError as e:
            raise InvalidToken(_reason(e)) from None
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise InvalidToken("malformed token") from None
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        if claims.get("typ") != ACCESS:
            raise InvalidToken("wrong token type")
        now = self.clock()
        exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
        if exp is None or iat is None:
            raise InvalidToken("exp and iat must be numbers")
        if now >= exp + self.leeway:
            raise InvalidToken("token expired")
        if iat > now + self.leeway:
            raise InvalidToken("token issued in the future")
        if "nbf" in claims:
            nbf = _number(claims["nbf"])
            if nbf is None:
                raise InvalidToken("nbf must be a number")
            if nbf > now + self.leeway:
                raise InvalidToken("token not valid yet")


def _header(token: str) -> dict[str, Any]:
    """The JOSE header of a well-shaped token, parsed but not trusted."""
    segment = token.partition(".")[0]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = orjson.loads(raw)
    except (binascii.Error, ValueError):  # orjson.JSONDecodeError is a ValueError
        raise InvalidToken("malformed token header") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed token header")
    return header


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value == value and abs(value) < 1e12 else None  # no NaN, no inf


def _reason(error: jwt.PyJWTError) -> str:
    """A short reason for PyJWT's refusal, safe to show (no token text)."""
    if isinstance(error, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"missing claim {error.claim}"
    if isinstance(error, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "algorithm not allowed for this key"
    if isinstance(error, InvalidSubjectError | InvalidJTIError):
        return "malformed claims"
    return "malformed token"
