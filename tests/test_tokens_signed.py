"""The seed's signed token (coatcheck.tokens.sign / verify)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

import pytest

from coatcheck.tokens import MAX_TOKEN, sign, verify

KEY = secrets.token_bytes(32)
NOW = 1_800_000_000.0


def b64(data: bytes) -> str:  # the seed's base64url(): rtrim(strtr(base64_encode(..)))
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seed_sign(payload: dict[str, object], secret: bytes) -> str:
    """The seed's PHP sign(), step by step: body = base64url(json), sig = HMAC-SHA256."""
    body = b64(json.dumps(payload, separators=(",", ":")).encode())
    return body + "." + b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def test_the_seeds_expected_output() -> None:
    token = sign({"user_id": 1}, KEY, now=NOW)
    assert verify(token, KEY, now=NOW) == {"user_id": 1, "exp": int(NOW) + 900}
    tampered = token[:5] + ("A" if token[5] != "A" else "B") + token[6:]
    assert verify(tampered, KEY, now=NOW) is None


def test_interoperates_with_the_seeds_format() -> None:
    php_made = seed_sign({"user_id": 1, "exp": int(NOW) + 60}, KEY)
    assert verify(php_made, KEY, now=NOW) == {"user_id": 1, "exp": int(NOW) + 60}
    assert sign({"user_id": 1, "exp": int(NOW) + 60}, KEY, lifetime=None) == php_made


def test_every_byte_flipped_is_refused() -> None:
    token = sign({"user_id": 1, "role": "admin"}, KEY, now=NOW)
    for i, ch in enumerate(token):
        for other in {"A", "a", "-", "_", "."} - {ch}:
            assert verify(token[:i] + other + token[i + 1 :], KEY, now=NOW) is None, i


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t[:-1],  # truncated signature
        lambda t: t.split(".")[0],  # no signature
        lambda t: t + "=",  # padded
        lambda t: t.replace("-", "+").replace("_", "/") + ("" if "-" in t or "_" in t else "+"),
        lambda t: t + ".",
        lambda t: "." + t,
        lambda t: t.split(".")[0] + ".",
        lambda t: " " + t,
        lambda t: t.upper(),
        lambda t: "",
        lambda t: "x" * (MAX_TOKEN + 1),
        lambda t: "é" + t,
    ],
)
def test_malformed_and_re_encoded_tokens_are_refused(change: object) -> None:
    token = sign({"user_id": 1}, KEY, now=NOW)
    assert verify(change(token), KEY, now=NOW) is None  # type: ignore[operator]


def test_non_canonical_last_character_is_refused() -> None:
    token = sign({"u": 1}, KEY, now=NOW)
    body, sig = token.split(".")
    # 32 bytes -> 43 chars: the last one carries 4 spare bits; setting one re-encodes
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    twin = sig[:-1] + alphabet[last ^ 1]
    assert base64.urlsafe_b64decode(twin + "=") == base64.urlsafe_b64decode(sig + "=")
    assert verify(f"{body}.{twin}", KEY, now=NOW) is None


def test_expiry_and_leeway() -> None:
    token = sign({"u": 1}, KEY, lifetime=60, now=NOW)
    assert verify(token, KEY, now=NOW + 59) is not None
    assert verify(token, KEY, now=NOW + 60) is None
    assert verify(token, KEY, now=NOW + 65, leeway=10) is not None
    no_exp = seed_sign({"u": 1}, KEY)  # the seed's token has no expiry: refused here
    assert verify(no_exp, KEY, now=NOW) is None
    bool_exp = seed_sign({"u": 1, "exp": True}, KEY)
    assert verify(bool_exp, KEY, now=0) is None
    not_a_dict = seed_sign([1, 2], KEY)  # type: ignore[arg-type]
    assert verify(not_a_dict, KEY, now=NOW) is None


def test_key_rotation() -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    before = sign({"u": 1}, old, now=NOW)
    after = sign({"u": 2}, [new, old], now=NOW)
    assert verify(before, [new, old], now=NOW) == {"u": 1, "exp": int(NOW) + 900}
    assert verify(after, [new, old], now=NOW) is not None
    assert verify(after, old, now=NOW) is None  # signed with the newest key
    assert verify(before, [new], now=NOW) is None  # the old key retired: its tokens die


def test_bad_keys_and_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        sign({"u": 1}, b"password")
    with pytest.raises(ValueError, match="at least 32"):
        verify("a.b", [KEY, b"short"])
    with pytest.raises(ValueError, match="no signing key"):
        sign({"u": 1}, [])
    with pytest.raises(ValueError, match="needs an expiry"):
        sign({"u": 1}, KEY, lifetime=None)
    with pytest.raises(ValueError, match="limit"):
        sign({"blob": "x" * MAX_TOKEN}, KEY)
    with pytest.raises(TypeError):
        sign({"when": object()}, KEY)
