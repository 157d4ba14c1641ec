"""Properties of the payload codec, the record envelope, and the engine's reading of
whatever bytes a store hands back (coatcheck.codec, coatcheck.record, Engine.load)."""

from __future__ import annotations

import datetime
import decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from coatcheck import Config, EncodeError, codec, ids, record
from coatcheck.contract import Stored
from coatcheck.engine import Client, Engine

from .strategies import examples, json_scalars, same, session_data


@examples(150)
@given(data=session_data)
def test_json_data_round_trips_exactly(data: dict[str, object]) -> None:
    """Types, key order, -0.0 and ints of any size within the limit come back as they were."""
    raw, big = codec.encode(data)
    assert isinstance(raw, bytes)
    assert same(codec.decode(raw, big), data)
    assert codec.encode(codec.decode(raw, big)) == (raw, big)  # lazy write's byte comparison
    header, body = record.unpack(record.pack(record.Header(created=1.0, big=big), raw))
    assert header.big is big and body == raw  # the envelope carries the decoder's flag


@examples(50)
@given(data=session_data, n=st.integers(2**64, 10**4000) | st.integers(-(10**4000), -(2**63) - 1))
def test_ints_beyond_64_bits_take_the_exact_encoder(data: dict[str, object], n: int) -> None:
    data = {**data, "n": n}
    raw, big = codec.encode(data)
    assert big and same(codec.decode(raw, big), data)


class _Custom:
    pass


class _Str(str):
    pass


class _Int(int):
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


non_json = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.tuples(st.integers()),
    st.frozensets(st.integers(), max_size=2),
    st.sets(st.integers(), max_size=2),
    st.binary(max_size=4),
    st.builds(bytearray, st.binary(max_size=4)),
    st.datetimes(),
    st.dates(),
    st.decimals(allow_nan=False),
    st.complex_numbers(),
    st.builds(_Custom),
    st.builds(_Str, st.text(max_size=3)),
    st.builds(_Int, st.integers()),
    st.builds(_Dict),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),  # non-str keys
    st.text(st.characters(whitelist_categories=["Cs"]), min_size=1, max_size=3),  # surrogates
)
assert datetime and decimal  # imported for the strategies' repr in failure reports


@examples(150)
@given(good=session_data, bad=non_json, where=st.sampled_from(["top", "list", "dict", "key"]))
def test_values_json_would_change_raise_encode_error(
    good: dict[str, object], bad: object, where: str
) -> None:
    """Sets, bytes, tuples, NaN, subclasses, non-str keys, lone surrogates: EncodeError,
    wherever they sit (which also makes it a TypeError, as json.dumps callers expect)."""
    data = dict(good)
    if where == "top":
        data["bad"] = bad
    elif where == "list":
        data["bad"] = [1, [2, bad]]
    elif where == "dict":
        data["bad"] = {"x": {"y": bad}}
    else:
        assume(isinstance(bad, str))  # a key with a lone surrogate, or a str subclass
        data.pop(bad, None)  # else the dict keeps the equal plain str key it had
        data[bad] = 1  # type: ignore[index]
    with pytest.raises(EncodeError) as caught:
        codec.encode(data)
    assert isinstance(caught.value, TypeError)


@examples(100)
@given(depth=st.integers(0, 120), leaf=json_scalars)
def test_nesting_round_trips_or_is_refused_with_encode_error(depth: int, leaf: object) -> None:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    data = {"d": value}
    try:
        raw, big = codec.encode(data)
    except EncodeError:
        assert depth >= 64  # the documented limit, not earlier
        return
    assert depth <= 64
    assert same(codec.decode(raw, big), data)


@examples(5)
@given(digits=st.integers(4301, 6000), sign=st.sampled_from([1, -1]))
def test_ints_over_the_digit_limit_raise_encode_error(digits: int, sign: int) -> None:
    with pytest.raises(EncodeError):
        codec.encode({"n": sign * 10 ** (digits - 1)})


@examples(200)
@given(
    raw=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
        session_data.map(lambda d: codec.encode(d)[0][: len(d) * 7]),  # truncated payloads
        st.sampled_from([b"[]", b"1", b'"x"', b"null", b"NaN", b'{"a":NaN}', b"1" * 5000]),
    ),
    big=st.booleans(),
)
def test_decoding_any_bytes_gives_a_dict_or_value_error(raw: bytes, big: bool) -> None:
    try:
        value = codec.decode(raw, big)
    except ValueError:
        return
    assert type(value) is dict


@examples(30)
@given(depth=st.integers(1, 200_000), big=st.booleans(), opener=st.sampled_from([b"[", b'{"a":']))
def test_decoding_hostile_nesting_raises_only_value_error(
    depth: int, big: bool, opener: bytes
) -> None:
    with pytest.raises(ValueError):
        codec.decode(b'{"a":' + opener * depth, big)


headers = st.sampled_from(
    [
        b'{"v":1,"c":0}',
        b'{"v":1,"c":1e300,"i":1e300}',
        b'{"v":1,"c":0,"j":true}',
        b'{"v":1,"c":0,"s":"!!","g":9e9}',
        b'{"v":1,"c":0,"f":"x"}',
        b'{"v":1,"c":true}',
        b'{"v":2,"c":0}',
        b'{"v":1,"c":0,"i":"1"}',
        b"[]",
    ]
)


@examples(200)
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda h, d: h + b"\n" + d, headers | st.binary(max_size=40), st.binary(max_size=40)
        ),
    )
)
def test_record_unpack_gives_a_typed_header_or_value_error(payload: bytes) -> None:
    try:
        header, data = record.unpack(payload)
    except ValueError:
        return
    assert type(header.created) is float and isinstance(data, bytes)
    assert type(header.big) is bool
    for t in (header.idle, header.absolute, header.grace_until):
        assert t is None or type(t) in (int, float)
    for s in (header.fingerprint, header.successor):
        assert s is None or type(s) is str


@examples(200)
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda h, d: h + b"\n" + d,
            headers,
            st.one_of(st.binary(max_size=60), session_data.map(lambda d: codec.encode(d)[0])),
        ),
    ),
    expires_at=st.floats(allow_nan=False),
    now=st.floats(0, 4e9),
    followed=st.booleans(),
)
def test_engine_load_of_any_stored_bytes_never_raises(
    payload: bytes, expires_at: float, now: float, followed: bool
) -> None:
    """A corrupt, foreign or tampered record starts a fresh session and is discarded; it
    never raises and never hands the app anything but a dict."""
    engine = Engine(Config(fingerprint=()))
    sid = ids.new_id()
    loaded = engine.load(sid, Stored(payload, expires_at, 1), Client(), now, followed=followed)
    if loaded.state is None:
        assert loaded.follow is not None and ids.is_well_formed(loaded.follow)
    elif loaded.state.is_new:
        assert loaded.state.data == {} and loaded.state.id != sid
        assert loaded.discard == ids.storage_key(sid)
    else:
        assert loaded.state.id == sid and type(loaded.state.data) is dict
        assert expires_at > now
