"""Properties of session ids, storage keys and sealed successors (coatcheck.ids)."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from coatcheck import ids

from .strategies import URLSAFE, examples, well_formed_id

ID_BYTES = st.integers(32, 64)
HEX64 = re.compile(r"[0-9a-f]{64}")


def _spec(value: str | None, id_bytes: int) -> bool:
    """What an id is, said independently of the regex in ids.py."""
    return (
        value is not None and len(value) == ids.id_length(id_bytes) and set(value) <= set(URLSAFE)
    )


@examples(100)
@given(id_bytes=ID_BYTES)
def test_new_ids_are_exactly_well_formed(id_bytes: int) -> None:
    sid = ids.new_id(id_bytes)
    assert len(sid) == ids.id_length(id_bytes) == -(-id_bytes * 8 // 6)
    assert _spec(sid, id_bytes) and ids.is_well_formed(sid, id_bytes)
    for other in (32, 48, 64):  # an id of one size is not an id of another length
        if ids.id_length(other) != len(sid):
            assert not ids.is_well_formed(sid, other)


@examples(300)
@given(
    value=st.one_of(
        st.none(),
        st.text(),
        st.text(alphabet=st.sampled_from([*URLSAFE, "=", "+", "/", ".", "\x00", "\n", "é", "٣"])),
        well_formed_id(),
        well_formed_id(48).map(lambda s: s + "\n"),
    ),
    id_bytes=ID_BYTES,
)
def test_is_well_formed_accepts_exactly_the_spec(value: str | None, id_bytes: int) -> None:
    """Never raises; true exactly for the length and ASCII alphabet of an issued id (no
    Unicode digit, no trailing newline that a ``$`` regex would let through)."""
    assert ids.is_well_formed(value, id_bytes) is _spec(value, id_bytes)


@examples(200)
@given(sid=well_formed_id(), pos=st.integers(0, 42), bad=st.characters())
def test_one_foreign_character_breaks_an_id(sid: str, pos: int, bad: str) -> None:
    assume(bad not in URLSAFE)
    assert ids.is_well_formed(sid)
    assert not ids.is_well_formed(sid[:pos] + bad + sid[pos + 1 :])
    assert not ids.is_well_formed(sid + bad)
    assert not ids.is_well_formed(sid[:-1])


@examples(200)
@given(a=well_formed_id(), b=well_formed_id())
def test_storage_key_is_deterministic_fixed_hex_and_distinct(a: str, b: str) -> None:
    key = ids.storage_key(a)
    assert key == ids.storage_key(a)
    assert HEX64.fullmatch(key) and ids.check_storage_key(key) == key
    assert a not in key
    if a != b:
        assert key != ids.storage_key(b)


@examples(200)
@given(key=st.one_of(st.text(max_size=80), st.text("0123456789abcdefABCDEF", max_size=66)))
def test_check_storage_key_accepts_only_lowercase_hex64(key: str) -> None:
    if len(key) == 64 and set(key) <= set("0123456789abcdef"):
        assert ids.check_storage_key(key) == key
    else:
        with pytest.raises(ValueError):
            ids.check_storage_key(key)


@examples(100)
@given(old=well_formed_id(), new=well_formed_id(), other=well_formed_id())
def test_a_sealed_successor_opens_only_with_the_old_id(old: str, new: str, other: str) -> None:
    sealed = ids.seal_successor(old, new)
    assert new not in sealed
    assert ids.open_successor(old, sealed) == new
    assert ids.seal_successor(old, new) != sealed  # a fresh nonce every time
    if other != old:
        assert ids.open_successor(other, sealed) is None


@examples(100)
@given(old=well_formed_id(), new=well_formed_id(), pos=st.integers(0, 200), char=st.characters())
def test_a_tampered_successor_does_not_open(old: str, new: str, pos: int, char: str) -> None:
    sealed = ids.seal_successor(old, new)
    pos %= len(sealed)
    assume(sealed[pos] != char)
    for bad in (sealed[:pos] + char + sealed[pos + 1 :], sealed[:pos], sealed + char):
        assert ids.open_successor(old, bad) is None


@examples(200)
@given(old=well_formed_id(), sealed=st.one_of(st.text(max_size=120), st.binary().map(str)))
def test_open_successor_of_garbage_is_none_and_never_raises(old: str, sealed: str) -> None:
    assert ids.open_successor(old, sealed) is None


@examples(100)
@given(a=well_formed_id(), b=well_formed_id(), message=st.binary(max_size=64))
def test_keyed_hash_is_keyed_by_the_id(a: str, b: str, message: bytes) -> None:
    mac = ids.keyed_hash(a, b"fingerprint", message)
    assert HEX64.fullmatch(mac) and mac == ids.keyed_hash(a, b"fingerprint", message)
    assert mac != ids.keyed_hash(a, b"other", message)
    if a != b:
        assert mac != ids.keyed_hash(b, b"fingerprint", message)
