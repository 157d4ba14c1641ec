"""Signing keys for access tokens: one algorithm per key, chosen when the key is made.

A :class:`Key` binds a key id (``kid``) to exactly one algorithm. A token is verified only
with the key its ``kid`` names and only with that key's algorithm, so a token cannot pick
its own algorithm: ``alg: none`` and HS256-signed-with-the-public-key (key confusion,
RFC 8725 section 2.1) fail before any signature is computed.

Three algorithms are offered: HS256 (one shared secret of at least 32 random bytes),
EdDSA (Ed25519) and ES256 (ECDSA P-256 with SHA-256). The asymmetric keys come from
``cryptography``, which coatcheck already depends on.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..errors import ConfigError

Algorithm: TypeAlias = Literal["HS256", "EdDSA", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = ("HS256", "EdDSA", "ES256")
MIN_SECRET = 32  # bytes: an HS256 secret shorter than the hash output weakens it

PrivateKey: TypeAlias = bytes | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey

_KID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass(frozen=True)
class Key:
    """One key of a key set.

    ``private``: the HS256 secret (bytes), or the private key that signs (EdDSA/ES256);
    None for a verify-only key. ``public``: the key that verifies EdDSA/ES256 tokens,
    derived from ``private`` when left out; always None for HS256. Invalid combinations
    raise :class:`~coatcheck.errors.ConfigError` here, at construction.
    """

    kid: str
    algorithm: Algorithm
    private: PrivateKey | None = field(default=None, repr=False)
    public: PublicKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.kid, str) or not _KID.fullmatch(self.kid):
            raise ConfigError("a key id (kid) is 1 to 64 characters of A-Z a-z 0-9 . _ : -")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(
                f"unsupported algorithm {self.algorithm!r}; use one of {', '.join(ALGORITHMS)}"
            )
        if self.algorithm == "HS256":
            self._check_secret()
        else:
            object.__setattr__(self, "public", self._check_pair())

    def _check_secret(self) -> None:
        if self.public is not None:
            raise ConfigError(f"key {self.kid!r}: HS256 has no public key; give the secret only")
        secret = self.private
        if not isinstance(secret, bytes) or len(secret) < MIN_SECRET:
            raise ConfigError(
                f"key {self.kid!r}: an HS256 secret must be at least {MIN_SECRET} random bytes "
                "(secrets.token_bytes(32)); a password is not a key"
            )

    def _check_pair(self) -> PublicKey:
        private, public = self.private, self.public
        want: tuple[type, type]
        if self.algorithm == "EdDSA":
            want = (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)
        else:
            want = (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)
        if private is not None and not isinstance(private, want[0]):
            raise ConfigError(f"key {self.kid!r}: {self.algorithm} needs an {want[0].__name__}")
        if public is not None and not isinstance(public, want[1]):
            raise ConfigError(f"key {self.kid!r}: {self.algorithm} needs an {want[1].__name__}")
        if private is not None:
            derived = private.public_key()
            if public is not None and _raw(public) != _raw(derived):
                raise ConfigError(f"key {self.kid!r}: the public key does not match the private")
            public = derived
        if public is None:
            raise ConfigError(f"key {self.kid!r}: give a private key, a public key, or both")
        if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name != "secp256r1":
            raise ConfigError(f"key {self.kid!r}: ES256 needs a P-256 key, not {public.curve.name}")
        return public

    @classmethod
    def generate(cls, kid: str, algorithm: Algorithm) -> Key:
        """A new random key: 32 bytes from :mod:`secrets` for HS256, a new key pair otherwise."""
        if algorithm == "HS256":
            return cls(kid, algorithm, secrets.token_bytes(32))
        if algorithm == "EdDSA":
            return cls(kid, algorithm, ed25519.Ed25519PrivateKey.generate())
        if algorithm == "ES256":
            return cls(kid, algorithm, ec.generate_private_key(ec.SECP256R1()))
        raise ConfigError(
            f"unsupported algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}"
        )

    @classmethod
    def from_pem(
        cls, kid: str, algorithm: Algorithm, pem: bytes, *, password: bytes | None = None
    ) -> Key:
        """A key from PEM text: a private key (signs and verifies) or a public key (verifies)."""
        if algorithm == "HS256":
            raise ConfigError("HS256 keys are raw secrets, not PEM: Key(kid, 'HS256', secret)")
        try:
            if b"PRIVATE KEY" in pem:
                private = serialization.load_pem_private_key(pem, password=password)
                return cls(kid, algorithm, private)  # type: ignore[arg-type]
            public = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"key {kid!r}: not a readable PEM key ({e})") from None
        return cls(kid, algorithm, None, public)  # type: ignore[arg-type]

    @property
    def can_sign(self) -> bool:
        return self.private is not None

    def public_only(self) -> Key:
        """This key without its private half, for services that only verify (EdDSA/ES256)."""
        if self.algorithm == "HS256":
            raise ConfigError("an HS256 secret both signs and verifies: it has no public half")
        return Key(self.kid, self.algorithm, None, self.public)

    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo), to hand to verifying services."""
        if self.public is None:
            raise ConfigError("an HS256 secret has no public key")
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def signing_key(self) -> PrivateKey:
        if self.private is None:
            raise ConfigError(f"key {self.kid!r} is verify-only: it has no private key")
        return self.private

    def verifying_key(self) -> bytes | PublicKey:
        if self.algorithm == "HS256":
            assert isinstance(self.private, bytes)
            return self.private
        assert self.public is not None
        return self.public


def _raw(public: PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
