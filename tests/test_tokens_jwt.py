"""JWT access tokens (coatcheck.tokens.AccessTokens, Key): the RFC 8725 attacks and the rest.

Every refused token must raise InvalidToken (never another exception, never a pass); the
reason is checked where it tells which defence fired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from coatcheck.errors import CoatcheckError, ConfigError, InvalidToken
from coatcheck.tokens import AccessTokens, Key

NOW = 1_800_000_000.0
ALGS = ["HS256", "EdDSA", "ES256"]


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: Any, signer: Callable[[bytes], bytes]) -> str:
    """A compact JWS built by hand, byte by byte, as an attacker would."""
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(payload).encode() if not isinstance(payload, bytes) else payload)
    signing_input = f"{head}.{body}".encode()
    return f"{head}.{body}.{b64(signer(signing_input))}"


def hs256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def signer_for(key: Key) -> Callable[[bytes], bytes]:
    """A signer producing exactly what PyJWT would for ``key`` (to forge claims validly)."""
    if key.algorithm == "HS256":
        assert isinstance(key.private, bytes)
        return hs256(key.private)
    algo = pyjwt.get_algorithm_by_name(key.algorithm)
    return lambda data: algo.sign(data, key.signing_key())  # type: ignore[arg-type]


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "ann",
        "iat": int(NOW),
        "exp": int(NOW) + 900,
        "jti": "j1",
        "typ": "access",
        "iss": "https://auth.example",
        "aud": "api",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


HEADER = {"typ": "at+jwt"}


@pytest.fixture(params=ALGS)
def key(request: pytest.FixtureRequest) -> Key:
    return Key.generate("k1", request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(key: Key, clock: Clock) -> AccessTokens:
    return AccessTokens(key, issuer="https://auth.example", audience="api", clock=clock)


def signed(key: Key, payload: Any, **header: Any) -> str:
    head = {"alg": key.algorithm, "kid": key.kid, **HEADER, **header}
    return forge({k: v for k, v in head.items() if v is not None}, payload, signer_for(key))


def refused(tokens: AccessTokens, token: object) -> str:
    with pytest.raises(InvalidToken) as caught:
        tokens.verify(token)
    return caught.value.reason


# --- issuing and verifying ------------------------------------------------------------------


def test_issue_and_verify(tokens: AccessTokens, key: Key) -> None:
    token = tokens.issue("ann", {"scope": "read"}, sid="fam")
    got = tokens.verify(token)
    assert got["sub"] == "ann" and got["scope"] == "read" and got["sid"] == "fam"
    assert got["typ"] == "access" and got["iss"] == "https://auth.example" and got["aud"] == "api"
    assert got["iat"] == int(NOW) and got["exp"] == int(NOW) + 900
    header = pyjwt.get_unverified_header(token)
    assert header == {"alg": key.algorithm, "kid": "k1", "typ": "at+jwt"}
    assert tokens.verify(tokens.issue("ann"))["jti"] != got["jti"]  # a fresh jti each time


def test_forged_helper_matches_pyjwt(tokens: AccessTokens, key: Key) -> None:
    # the attack tests below forge tokens by hand: a valid one must verify, or they prove nothing
    assert tokens.verify(signed(key, claims()))["jti"] == "j1"


def test_reserved_and_non_json_claims_are_caller_errors(tokens: AccessTokens) -> None:
    with pytest.raises(ValueError, match="exp"):
        tokens.issue("ann", {"exp": 1})
    with pytest.raises(ValueError, match="subject"):
        tokens.issue("")
    with pytest.raises(TypeError):
        tokens.issue("ann", {"when": object()})
    with pytest.raises(ValueError, match="max_bytes"):
        tokens.issue("ann", {"blob": "x" * 9000})


# --- RFC 8725 attacks -----------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "NONE", "None", "nOnE", "NoNe", " none"])
def test_alg_none_in_any_case_is_refused(tokens: AccessTokens, alg: str) -> None:
    header = {"alg": alg, "kid": "k1", **HEADER}
    with_sig = forge(header, claims(), lambda data: b"x")
    assert "alg none" in refused(tokens, with_sig)
    unsigned = with_sig.rsplit(".", 1)[0] + "."  # the classic: an empty signature
    assert refused(tokens, unsigned) == "malformed token"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_hmac_with_the_public_key_as_secret_is_refused(alg: str, clock: Clock) -> None:
    """HS/EdDSA and HS/ES confusion: sign HS256 using the verifier's public key as secret."""
    key = Key.generate("k1", alg)  # type: ignore[arg-type]
    tokens = AccessTokens(key, issuer="https://auth.example", audience="api", clock=clock)
    pem = key.public_pem()
    der = key.public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, der, pem.strip()):
        for kid in ("k1", None):
            header = {"alg": "HS256", "kid": kid, **HEADER}
            header = {k: v for k, v in header.items() if v is not None}
            token = forge(header, claims(), hs256(secret))
            reason = refused(tokens, token)
            assert reason in ("algorithm not allowed for this key", "unknown key id")


def test_hmac_secret_cannot_verify_an_asymmetric_algorithm(clock: Clock) -> None:
    """The other direction: a kid made for HS256 never accepts an EdDSA or ES256 header."""
    hs = Key.generate("k1", "HS256")
    tokens = AccessTokens(hs, issuer="https://auth.example", audience="api", clock=clock)
    for other in ("EdDSA", "ES256"):
        forged = signed(Key.generate("k1", other), claims())  # type: ignore[arg-type]
        assert refused(tokens, forged) == "algorithm not allowed for this key"


@pytest.mark.parametrize("alg", ["HS384", "HS512", "RS256", "PS256", "ES384", "ES512", "Ed25519"])
def test_a_disallowed_algorithm_is_refused(tokens: AccessTokens, key: Key, alg: str) -> None:
    token = forge({"alg": alg, "kid": "k1", **HEADER}, claims(), lambda data: b"s" * 64)
    assert refused(tokens, token) == "algorithm not allowed for this key"


def test_unknown_or_missing_kid_is_refused(tokens: AccessTokens, key: Key) -> None:
    assert refused(tokens, signed(key, claims(), kid="k2")) == "unknown key id"
    assert refused(tokens, signed(key, claims(), kid=None)) == "unknown key id"
    assert refused(tokens, signed(key, claims(), kid=7)) == "unknown key id"
    assert refused(tokens, signed(key, claims(), kid="../../k1")) == "unknown key id"


def test_crit_header_is_refused(tokens: AccessTokens, key: Key) -> None:
    token = signed(key, claims(), crit=["exp"])
    assert refused(tokens, token) == "unsupported critical header"


def test_exp_is_required_and_enforced(tokens: AccessTokens, key: Key, clock: Clock) -> None:
    assert refused(tokens, signed(key, claims(exp=None))) == "missing claim exp"
    for bad in (True, "1900000000", [1], {"a": 1}, float("inf")):
        try:
            token = signed(key, claims(exp=bad))
        except ValueError:  # json cannot write inf
            continue
        assert refused(tokens, token) in ("exp and iat must be numbers", "malformed token")
    token = tokens.issue("ann")
    clock.now = NOW + 900 + 29  # within the 30 s leeway
    assert tokens.verify(token)["sub"] == "ann"
    clock.now = NOW + 900 + 30
    assert refused(tokens, token) == "token expired"
    past = signed(key, claims(iat=int(NOW) - 5000, exp=int(NOW) - 4000))
    assert refused(tokens, past) == "token expired"


def test_leeway_is_configurable_and_bounded(key: Key, clock: Clock) -> None:
    strict = AccessTokens(key, leeway=0, clock=clock)
    token = strict.issue("ann")
    clock.now = NOW + 900
    assert refused(strict, token) == "token expired"
    with pytest.raises(ConfigError, match="leeway"):
        AccessTokens(key, leeway=3600)


def test_nbf_and_iat_in_the_future_are_refused(tokens: AccessTokens, key: Key) -> None:
    later = int(NOW) + 120
    assert refused(tokens, signed(key, claims(nbf=later))) == "token not valid yet"
    assert tokens.verify(signed(key, claims(nbf=int(NOW) + 10)))["sub"] == "ann"  # leeway
    assert refused(tokens, signed(key, claims(nbf="soon"))) == "nbf must be a number"
    assert refused(tokens, signed(key, claims(iat=later))) == "token issued in the future"
    assert refused(tokens, signed(key, claims(iat=None))) == "missing claim iat"


def test_wrong_audience_or_issuer_is_refused(tokens: AccessTokens, key: Key) -> None:
    assert refused(tokens, signed(key, claims(aud="other"))) == "wrong audience"
    assert refused(tokens, signed(key, claims(aud=["other", "x"]))) == "wrong audience"
    assert refused(tokens, signed(key, claims(aud=None))) == "missing claim aud"
    assert refused(tokens, signed(key, claims(iss="https://evil.example"))) == "wrong issuer"
    assert refused(tokens, signed(key, claims(iss=None))) == "missing claim iss"
    assert tokens.verify(signed(key, claims(aud=["other", "api"])))["sub"] == "ann"


def test_a_token_with_an_audience_is_refused_where_none_is_configured(key: Key) -> None:
    plain = AccessTokens(key, clock=Clock())
    assert refused(plain, signed(key, claims(iss=None))) == "wrong audience"


def test_wrong_type_is_refused(tokens: AccessTokens, key: Key) -> None:
    # a refresh token (or an ID token) signed with the same key is not an access token
    assert refused(tokens, signed(key, claims(typ="refresh"))) == "wrong token type"
    assert refused(tokens, signed(key, claims(typ=None))) == "missing claim typ"
    assert refused(tokens, signed(key, claims(), typ="JWT")) == "wrong token type"
    assert refused(tokens, signed(key, claims(), typ="refresh+jwt")) == "wrong token type"
    assert refused(tokens, signed(key, claims(), typ=None)) == "wrong token type"
    assert tokens.verify(signed(key, claims(), typ="AT+JWT"))["sub"] == "ann"  # RFC 7515: any case


def test_missing_sub_or_jti_is_refused(tokens: AccessTokens, key: Key) -> None:
    assert refused(tokens, signed(key, claims(sub=None))) == "missing claim sub"
    assert refused(tokens, signed(key, claims(jti=None))) == "missing claim jti"
    assert refused(tokens, signed(key, claims(sub=12))) == "malformed claims"


def test_every_character_changed_is_refused(tokens: AccessTokens) -> None:
    token = tokens.issue("ann", {"role": "user"})
    for i, ch in enumerate(token):
        for other in {"A", "a", "-", "_", ".", "="} - {ch}:
            with pytest.raises(InvalidToken):
                tokens.verify(token[:i] + other + token[i + 1 :])


def test_a_tampered_payload_is_refused(tokens: AccessTokens) -> None:
    head, _, sig = tokens.issue("ann", {"role": "user"}).split(".")
    evil = b64(json.dumps(claims(role="admin")).encode())
    assert refused(tokens, f"{head}.{evil}.{sig}") == "bad signature"


def test_every_truncation_is_refused(tokens: AccessTokens) -> None:
    token = tokens.issue("ann")
    for end in range(len(token)):
        with pytest.raises(InvalidToken):
            tokens.verify(token[:end])
    for start in range(1, len(token)):
        with pytest.raises(InvalidToken):
            tokens.verify(token[start:])


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "!!!.b.c",
        "a.b.c ",
        " a.b.c",
        "a.b.c\n",
        "a\x00.b.c",
        "é.b.c",
        "a=.b.c",
        "a+b.c.d",
        None,
        123,
        b"a.b.c",
        ["a", "b", "c"],
    ],
)
def test_malformed_tokens_are_refused(tokens: AccessTokens, token: object) -> None:
    assert refused(tokens, token) == "malformed token"


def test_malformed_segments_are_refused(tokens: AccessTokens, key: Key) -> None:
    def raw(header: bytes, payload: bytes = b"{}", sig: bytes = b"sig") -> str:
        return f"{b64(header)}.{b64(payload)}.{b64(sig)}"

    bad_headers = [
        b"not json",
        b"[1, 2]",
        b'"alg"',
        b"{",
        b'{"alg": 5}',
        b'{"alg": null}',
        b"\xff\xfe",
        b"{" * 5000,
        b'{"a":' + b"[" * 3000 + b"]" * 3000 + b"}",
    ]
    for header in bad_headers:
        assert refused(tokens, raw(header)).startswith("malformed token"), header[:20]
    # a segment whose length cannot be base64 (4n+1 characters)
    assert refused(tokens, "abcde.e30.c2ln").startswith("malformed token")
    # a correctly signed token whose payload is not a JSON object
    head = {"alg": key.algorithm, "kid": "k1", **HEADER}
    for payload in (b"not json", b"[1,2]", b"12", b"\xff", b"[" * 5000):
        assert refused(tokens, forge(head, payload, signer_for(key))) == "malformed token"
    # numbers too long for Python's int parser
    huge = b'{"sub":"a","exp":' + b"9" * 5000 + b"}"
    assert refused(tokens, forge(head, huge, signer_for(key))) == "malformed token"


def test_oversized_tokens_are_refused_before_parsing(tokens: AccessTokens, key: Key) -> None:
    assert refused(tokens, "a" * 10_000_000) == "token too large"
    big = signed(key, claims(pad="x" * 9000))
    assert refused(tokens, big) == "token too large"
    roomy = AccessTokens(key, issuer="https://auth.example", audience="api", max_bytes=20_000)
    roomy.clock = Clock()
    assert roomy.verify(big)["pad"] == "x" * 9000


def test_the_reason_never_carries_the_token(tokens: AccessTokens) -> None:
    token = tokens.issue("ann")
    with pytest.raises(InvalidToken) as caught:
        tokens.verify(token[:-2] + "xx")
    error = caught.value
    assert isinstance(error, CoatcheckError)
    assert token[:20] not in str(error) and token[-20:] not in str(error)


# --- rotation -------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_key_rotation(alg: str, clock: Clock) -> None:
    old, new = Key.generate("2025-01", alg), Key.generate("2025-02", alg)  # type: ignore[arg-type]
    before = AccessTokens(old, clock=clock).issue("ann")
    rotated = AccessTokens([new, old], clock=clock)
    assert rotated.verify(before)["sub"] == "ann"  # the old key still verifies
    after = rotated.issue("bob")
    assert pyjwt.get_unverified_header(after)["kid"] == "2025-02"  # new tokens: new kid
    assert rotated.verify(after)["sub"] == "bob"
    retired = AccessTokens([new], clock=clock)
    assert refused(retired, before) == "unknown key id"  # a removed key fails
    assert retired.verify(after)["sub"] == "bob"


def test_same_kid_with_another_key_fails_the_signature(clock: Clock) -> None:
    token = AccessTokens(Key.generate("k", "EdDSA"), clock=clock).issue("ann")
    assert refused(AccessTokens(Key.generate("k", "EdDSA"), clock=clock), token) == "bad signature"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_verify_only_services_use_the_public_key(alg: str, clock: Clock) -> None:
    signer = Key.generate("k1", alg)  # type: ignore[arg-type]
    token = AccessTokens(signer, clock=clock).issue("ann")
    public = Key.from_pem("k1", alg, signer.public_pem())  # type: ignore[arg-type]
    assert public.private is None and signer.public_only().private is None
    verifier = AccessTokens(public, clock=clock)
    assert verifier.verify(token)["sub"] == "ann"
    with pytest.raises(ConfigError, match="verify-only"):
        verifier.issue("ann")


def test_keys_from_pem_private(clock: Clock) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = Key.from_pem("k1", "EdDSA", pem)
    token = AccessTokens(key, clock=clock).issue("ann")
    assert AccessTokens(Key("k1", "EdDSA", public=private.public_key()), clock=clock).verify(token)


# --- keys are checked when they are made ----------------------------------------------------


def test_hs256_secret_length_is_enforced() -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        Key("k1", "HS256", b"password")
    with pytest.raises(ConfigError, match="at least 32"):
        Key("k1", "HS256", secrets.token_bytes(31))
    with pytest.raises(ConfigError, match="at least 32"):
        Key("k1", "HS256", "a" * 64)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 32"):
        Key("k1", "HS256")
    assert Key("k1", "HS256", secrets.token_bytes(32)).algorithm == "HS256"


@pytest.mark.parametrize("alg", ["none", "NONE", "RS256", "HS512", "ES384", "", "hs256"])
def test_only_three_algorithms_exist(alg: str) -> None:
    with pytest.raises(ConfigError, match="unsupported algorithm"):
        Key("k1", alg, secrets.token_bytes(32))  # type: ignore[arg-type]


def test_mismatched_key_material_is_refused() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ConfigError, match="Ed25519PrivateKey"):
        Key("k1", "EdDSA", p256)
    with pytest.raises(ConfigError, match="EllipticCurvePrivateKey"):
        Key("k1", "ES256", ed)
    with pytest.raises(ConfigError, match="P-256"):
        Key("k1", "ES256", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigError, match="does not match"):
        Key("k1", "EdDSA", ed, ed25519.Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ConfigError, match="private key, a public key"):
        Key("k1", "EdDSA")
    with pytest.raises(ConfigError, match="no public key"):
        Key("k1", "HS256", secrets.token_bytes(32), ed.public_key())
    with pytest.raises(ConfigError, match="needs an Ed25519PrivateKey"):
        Key("k1", "EdDSA", secrets.token_bytes(32))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="PEM"):
        Key.from_pem("k1", "EdDSA", b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----")


@pytest.mark.parametrize("kid", ["", "a" * 65, "a b", "k/1", "é", "k\n"])
def test_kid_syntax(kid: str) -> None:
    with pytest.raises(ConfigError, match="kid"):
        Key(kid, "HS256", secrets.token_bytes(32))


def test_key_set_options_are_checked() -> None:
    k = Key.generate("k1", "HS256")
    with pytest.raises(ConfigError, match="share the key id"):
        AccessTokens([k, Key.generate("k1", "EdDSA")])
    with pytest.raises(ConfigError, match="at least one Key"):
        AccessTokens([])
    for lifetime in (0, -1, True, 1.5):
        with pytest.raises(ConfigError, match="lifetime"):
            AccessTokens(k, lifetime=lifetime)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="audience"):
        AccessTokens(k, audience="")
    with pytest.raises(ConfigError, match="max_bytes"):
        AccessTokens(k, max_bytes=10)
    assert "private" not in repr(k) and repr(k).count(k.kid) == 1


def test_import_coatcheck_does_not_import_pyjwt() -> None:
    import subprocess
    import sys

    code = "import sys, coatcheck, coatcheck.tokens; print('jwt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
