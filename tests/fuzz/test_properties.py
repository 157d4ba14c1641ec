"""Properties of the pure parts: cookie headers, ids, the codec, the record envelope,
config validation, and the engine's load decision on arbitrary store bytes."""

from __future__ import annotations

import math
import re
from http.cookies import SimpleCookie

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from coatcheck import Config, ConfigError, EncodeError, codec, ids, record
from coatcheck.contract import Stored
from coatcheck.cookies import CookieAction, session_cookie, set_cookie
from coatcheck.engine import Client, Engine

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ID_BYTES = st.integers(32, 64)
HEX64 = re.compile(r"[0-9a-f]{64}")
# cookie-header text: anything, with the characters that matter to the parser made likely
nasty_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(';="\\ \t\r\n\x00,\x7f\u2028\ufeff')),
        st.characters(),
    ),
    max_size=200,
)


def well_formed_id(id_bytes: int = 32) -> st.SearchStrategy[str]:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    n = ids.id_length(id_bytes)
    return st.text(alphabet=alphabet, min_size=n, max_size=n)


# --- cookies ------------------------------------------------------------------------------


@FAST
@given(header=st.one_of(st.none(), nasty_text), name=st.sampled_from(["session", "sid", "a"]))
def test_cookie_header_parse_never_raises_and_engine_yields_only_ids(
    header: str | None, name: str
) -> None:
    value = session_cookie(header, name)
    assert value is None or isinstance(value, str)
    # the value is raw; what reaches a store is what the engine's parse lets through
    sid = Engine(Config(cookie_name=name)).parse(value)
    assert sid is None or ids.is_well_formed(sid)
    if sid is not None:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", sid)


@FAST
@given(
    sid=well_formed_id(),
    other=well_formed_id(),
    junk_before=st.lists(
        st.tuples(
            st.from_regex(r"[a-z]{1,8}", fullmatch=True),
            nasty_text.filter(lambda s: ";" not in s),
        ),
        max_size=4,
    ),
    quoted=st.booleans(),
    spaces=st.sampled_from(["", " ", "  ", "\t"]),
    repeat=st.sampled_from(["none", "same", "other"]),
)
def test_cookie_header_finds_the_id_and_refuses_ambiguous_repeats(
    sid: str,
    other: str,
    junk_before: list[tuple[str, str]],
    quoted: bool,
    spaces: str,
    repeat: str,
) -> None:
    """The session cookie is found among others, quoted or padded; a repeated name with the
    same value counts once, and with different values (a cookie tossed from a sibling
    subdomain or a deeper path) yields nothing, so neither can fix the victim's id."""
    junk = [f"{k}={v}" for k, v in junk_before if k.strip() != "session"]
    value = f'"{sid}"' if quoted else sid
    parts = [*junk, f"{spaces}session{spaces}={spaces}{value}{spaces}"]
    if repeat == "same":
        parts.append(f"session={sid}")
    elif repeat == "other":
        parts.insert(len(junk) // 2, f"session={other}")
    header = ";".join(parts)
    expected = None if repeat == "other" and other != sid else sid
    assert session_cookie(header, "session") == expected
    assert Engine(Config()).parse(session_cookie(header, "session")) == expected


@FAST
@given(header=nasty_text, huge=st.integers(5_000, 200_000))
def test_cookie_huge_or_malformed_values_never_become_ids(header: str, huge: int) -> None:
    engine = Engine(Config())
    for value in ("A" * huge, "A" * 42 + "\x00", "A" * 42 + "é", "../" + "A" * 40, header):
        got = engine.parse(session_cookie(f"session={value}", "session"))
        assert got is None or ids.is_well_formed(got)
    assert engine.parse(session_cookie(f"session={'A' * huge}", "session")) is None


def _parse_set_cookie(text: str) -> tuple[str, str, dict[str, str | bool]]:
    """A strict RFC 6265 section 5.2 split, independent of the code under test."""
    first, *attrs = text.split("; ")
    name, sep, value = first.partition("=")
    assert sep, text
    out: dict[str, str | bool] = {}
    for a in attrs:
        k, sep, v = a.partition("=")
        assert k.lower() not in out, f"attribute {k} twice"
        out[k.lower()] = v if sep else True
    return name, value, out


cookie_configs = st.builds(
    Config,
    cookie_name=st.sampled_from(["session", "sid", "__Secure-s", "__Host-s", "x!#$%&'*+-^_`|~"]),
    cookie_path=st.sampled_from(["/", "/app", "/a/b-c_d"]),
    cookie_domain=st.sampled_from([None, "example.com", ".example.com", "a-b.example.org"]),
    cookie_secure=st.just(True),
    cookie_httponly=st.booleans(),
    cookie_samesite=st.sampled_from(["Lax", "Strict", "None", None]),
    cookie_partitioned=st.booleans(),
    id_bytes=ID_BYTES,
).filter(lambda c: True)


@FAST
@given(
    data=st.data(),
    max_age=st.one_of(st.none(), st.integers(0, 10 * 365 * 86400)),
    delete=st.booleans(),
    now=st.floats(0, 4e9),
)
def test_set_cookie_round_trips_through_parsers(
    data: st.DataObject, max_age: int | None, delete: bool, now: float
) -> None:
    try:
        config = data.draw(cookie_configs)
    except ConfigError:  # a __Host- name with a path or domain: refused, as documented
        assume(False)
    sid = ids.new_id(config.id_bytes)
    action = CookieAction(None, 0) if delete else CookieAction(sid, max_age)
    header = set_cookie(config, action, now=now)
    assert "\r" not in header and "\n" not in header and "\x00" not in header
    assert len(header.encode()) <= 4096
    name, value, attrs = _parse_set_cookie(header)
    assert name == config.cookie_name
    assert value == ("" if delete else sid)
    assert attrs["path"] == config.cookie_path
    assert attrs.get("domain") == config.cookie_domain
    assert ("secure" in attrs) == config.cookie_secure
    assert ("httponly" in attrs) == config.cookie_httponly
    assert attrs.get("samesite") == config.cookie_samesite
    assert ("partitioned" in attrs) == config.cookie_partitioned
    if delete:
        assert attrs["max-age"] == "0"
    elif max_age is None:
        assert "max-age" not in attrs and "expires" not in attrs
    else:
        assert attrs["max-age"] == str(max_age)
    # the browser echoes name=value back; our parser and the engine recover the id
    echoed = f"other=1; {name}={value}"
    if not delete:
        assert Engine(config).parse(session_cookie(echoed, config.cookie_name)) == sid
    # and the standard library's parser agrees (it predates the Partitioned flag)
    if not config.cookie_partitioned:
        jar = SimpleCookie()
        jar.load(header)
        assert config.cookie_name in jar, header
        morsel = jar[config.cookie_name]
        assert morsel.value == value
        assert morsel["path"] == config.cookie_path
        assert morsel["domain"] == (config.cookie_domain or "")
        assert bool(morsel["secure"]) == config.cookie_secure
        assert bool(morsel["httponly"]) == config.cookie_httponly
        assert morsel["samesite"] == (config.cookie_samesite or "")
        if not delete and max_age is not None:
            assert morsel["max-age"] == str(max_age)


@FAST
@given(before=st.text(max_size=30), bad=st.sampled_from(";\r\n\x00"), after=st.text(max_size=30))
def test_set_cookie_refuses_header_splitting_values(before: str, bad: str, after: str) -> None:
    value = before + bad + after
    with pytest.raises(ValueError):
        set_cookie(Config(), CookieAction(value, None), now=0)


# --- ids ----------------------------------------------------------------------------------


@FAST
@given(id_bytes=ID_BYTES)
def test_new_ids_are_well_formed(id_bytes: int) -> None:
    sid = ids.new_id(id_bytes)
    assert ids.is_well_formed(sid, id_bytes)
    assert len(sid) == ids.id_length(id_bytes)
    # an id of one size is not well formed for another
    other = 32 if id_bytes != 32 else 33
    if ids.id_length(other) != ids.id_length(id_bytes):
        assert not ids.is_well_formed(sid, other)


@FAST
@given(value=st.one_of(st.none(), st.text(), st.text(max_size=90)), id_bytes=ID_BYTES)
def test_is_well_formed_never_crashes_and_matches_a_spec(value: str | None, id_bytes: int) -> None:
    ok = ids.is_well_formed(value, id_bytes)
    expected = (
        value is not None
        and len(value) == ids.id_length(id_bytes)
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    )
    assert ok is expected


@FAST
@given(sid=well_formed_id(), pos=st.integers(0, 42), bad=st.characters())
def test_one_bad_character_breaks_an_id(sid: str, pos: int, bad: str) -> None:
    assume(not (bad.isascii() and (bad.isalnum() or bad in "-_")))
    assert not ids.is_well_formed(sid[:pos] + bad + sid[pos + 1 :])
    assert not ids.is_well_formed(sid + bad)
    assert not ids.is_well_formed(sid[:-1])


@FAST
@given(a=well_formed_id(), b=well_formed_id())
def test_storage_key_is_deterministic_hex_and_distinct(a: str, b: str) -> None:
    ka = ids.storage_key(a)
    assert ka == ids.storage_key(a)
    assert HEX64.fullmatch(ka)
    assert ids.check_storage_key(ka) == ka
    assert a not in ka
    if a != b:
        assert ka != ids.storage_key(b)


@FAST
@given(key=st.text(max_size=80))
def test_check_storage_key_accepts_only_lowercase_hex64(key: str) -> None:
    if HEX64.fullmatch(key) and len(key) == 64:
        assert ids.check_storage_key(key) == key
    else:
        with pytest.raises(ValueError):
            ids.check_storage_key(key)


@FAST
@given(old=well_formed_id(), new=well_formed_id(), other=well_formed_id())
def test_sealed_successor_opens_only_with_the_old_id(old: str, new: str, other: str) -> None:
    sealed = ids.seal_successor(old, new)
    assert new not in sealed
    assert ids.open_successor(old, sealed) == new
    if other != old:
        assert ids.open_successor(other, sealed) != new


@FAST
@given(old=well_formed_id(), sealed=st.text(max_size=120))
def test_open_successor_on_garbage_returns_text_or_none(old: str, sealed: str) -> None:
    got = ids.open_successor(old, sealed)
    assert got is None or isinstance(got, str)


# --- codec --------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-(10**300), max_value=10**300),  # the big-int path
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(st.characters(blacklist_categories=["Cs"])), children, max_size=5),
    ),
    max_leaves=30,
)
session_data = st.dictionaries(
    st.text(st.characters(blacklist_categories=["Cs"])), json_values, max_size=8
)


def _same(a: object, b: object) -> bool:
    """Equal with exact types (1 != 1.0 != True here), and -0.0 kept apart from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        assert isinstance(b, float)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


@FAST
@given(data=session_data)
def test_codec_round_trips_json_data_exactly(data: dict[str, object]) -> None:
    raw, big = codec.encode(data)
    assert isinstance(raw, bytes)
    back = codec.decode(raw, big)
    assert _same(back, data), (back, data)
    # and the record envelope carries the flag that picks the decoder
    header, body = record.unpack(record.pack(record.Header(created=1.0, big=big), raw))
    assert header.big is big and _same(codec.decode(body, header.big), data)


class _Custom:
    pass


class _StrSub(str):
    pass


non_json = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.tuples(st.integers()),
    st.frozensets(st.integers(), max_size=2),
    st.sets(st.integers(), max_size=2),
    st.binary(max_size=4),
    st.builds(bytearray, st.binary(max_size=4)),
    st.datetimes(),
    st.decimals(allow_nan=False),
    st.complex_numbers(),
    st.builds(_Custom),
    st.builds(_StrSub, st.text(max_size=3)),
    st.dictionaries(st.integers(), st.integers(), min_size=1, max_size=2),  # non-str keys
    st.text(st.characters(whitelist_categories=["Cs"]), min_size=1, max_size=3),  # surrogates
)


@FAST
@given(good=session_data, bad=non_json, where=st.sampled_from(["top", "list", "dict", "key"]))
def test_codec_refuses_non_json_with_encode_error(
    good: dict[str, object], bad: object, where: str
) -> None:
    data = dict(good)
    if where == "top":
        data["bad"] = bad
    elif where == "list":
        data["bad"] = [1, [2, bad]]
    elif where == "dict":
        data["bad"] = {"x": {"y": bad}}
    else:
        if not isinstance(bad, str) or bad in data:
            assume(False)  # an equal plain-str key already there would keep its own object
        data[bad] = 1  # a key with a lone surrogate, or a str subclass key
    with pytest.raises(EncodeError):
        codec.encode(data)


@FAST
@given(depth=st.integers(0, 120), leaf=json_scalars)
def test_codec_nesting_either_round_trips_or_is_refused(depth: int, leaf: object) -> None:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    data = {"d": value}
    try:
        raw, big = codec.encode(data)
    except EncodeError:
        assert depth >= 60
        return
    assert depth <= 70
    assert _same(codec.decode(raw, big), data)


@settings(max_examples=5, deadline=None)
@given(digits=st.integers(4301, 6000), sign=st.sampled_from([1, -1]))
def test_codec_refuses_huge_ints_with_encode_error(digits: int, sign: int) -> None:
    with pytest.raises(EncodeError):
        codec.encode({"n": sign * 10 ** (digits - 1)})


@FAST
@given(
    raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)), big=st.booleans()
)
def test_codec_decode_of_arbitrary_bytes_raises_only_value_error(raw: bytes, big: bool) -> None:
    try:
        value = codec.decode(raw, big)
    except ValueError:
        return
    assert type(value) is dict


@SLOW
@given(depth=st.integers(1, 200_000), big=st.booleans(), opener=st.sampled_from([b"[", b'{"a":']))
def test_codec_decode_of_hostile_nesting_raises_only_value_error(
    depth: int, big: bool, opener: bytes
) -> None:
    raw = b'{"a":' + opener * depth
    with pytest.raises(ValueError):
        codec.decode(raw, big)


@FAST
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda h, d: h + b"\n" + d, st.binary(max_size=80), st.binary(max_size=80)),
        st.builds(
            lambda c, d: b'{"v":1,"c":' + c.encode() + b"}\n" + d,
            st.sampled_from(["1", "1.5", "true", "null", '"x"', "1e999", "-0"]),
            st.binary(max_size=40),
        ),
    )
)
def test_record_unpack_raises_only_value_error(payload: bytes) -> None:
    try:
        header, data = record.unpack(payload)
    except ValueError:
        return
    assert isinstance(header.created, float) and isinstance(data, bytes)


@FAST
@given(
    payload=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda h, d: h + b"\n" + d,
            st.sampled_from(
                [
                    b'{"v":1,"c":0}',
                    b'{"v":1,"c":1e300,"i":1e300}',
                    b'{"v":1,"c":0,"j":true}',
                    b'{"v":1,"c":0,"s":"!!","g":9e9}',
                    b'{"v":1,"c":0,"f":"x"}',
                ]
            ),
            st.one_of(st.binary(max_size=60), session_data.map(lambda d: codec.encode(d)[0])),
        ),
    ),
    expires_at=st.floats(allow_nan=False),
    now=st.floats(0, 4e9),
    followed=st.booleans(),
)
def test_engine_load_of_arbitrary_store_bytes_never_raises(
    payload: bytes, expires_at: float, now: float, followed: bool
) -> None:
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


# --- config -------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(-10, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.0, -0.0, 1e-300, 1, 60, 1440, 4e9]),
)
maybe_none_numbers = st.one_of(st.none(), numbers)
choice = st.one_of(
    st.sampled_from(
        [
            "Lax",
            "lax",
            "STRICT",
            "None",
            "none",
            "exclusive",
            "OPTIMISTIC",
            "none",
            "raise",
            "Mine",
            "theirs",
            "reset",
            "FLAG",
            "",
        ]
    ),
    st.text(max_size=10),
)
cfg_text = st.one_of(
    st.sampled_from(
        [
            "/",
            "/app",
            "session",
            "__Host-x",
            "__Secure-x",
            "example.com",
            ".a.b",
            "123",
            "a b",
            "a;b",
            "x" * 5000,
            "/\x00",
            "/é",
        ]
    ),
    st.text(max_size=30),
)
config_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "cookie_name": cfg_text,
        "cookie_path": cfg_text,
        "cookie_domain": st.one_of(st.none(), cfg_text),
        "cookie_secure": st.booleans(),
        "cookie_httponly": st.booleans(),
        "cookie_samesite": st.one_of(st.none(), choice),
        "cookie_partitioned": st.booleans(),
        "cookie_lifetime": numbers,
        "id_bytes": st.integers(-5, 200),
        "idle_timeout": numbers,
        "absolute_timeout": maybe_none_numbers,
        "touch_threshold": maybe_none_numbers,
        "gc_probability": st.integers(-3, 1000),
        "gc_divisor": st.integers(-3, 1000),
        "lazy_write": st.booleans(),
        "max_bytes": st.integers(-3, 10**9),
        "lock_mode": choice,
        "lock_lease": numbers,
        "lock_wait": numbers,
        "lock_backoff": numbers,
        "lock_backoff_max": numbers,
        "conflict_resolution": choice,
        "fingerprint": st.lists(
            st.one_of(
                st.sampled_from(["user_agent", "ip", "IP", "User_Agent"]), st.text(max_size=5)
            ),
            max_size=3,
        ).map(tuple),
        "ipv4_prefix": st.integers(-3, 200),
        "ipv6_prefix": st.integers(-3, 200),
        "fingerprint_policy": choice,
        "regenerate_grace": numbers,
    },
)


def _check_invariants(c: Config) -> None:
    assert re.fullmatch(r"[!#$%&'*+\-^_`|~0-9A-Za-z]+", c.cookie_name)
    assert not c.cookie_name.isdigit()
    assert c.cookie_path.startswith("/") and c.cookie_path.isascii()
    for attr in (c.cookie_path, c.cookie_domain or ""):
        assert not re.search(r"[;,\x00-\x1f\x7f]", attr)
    assert 32 <= c.id_bytes <= 64
    assert c.cookie_samesite in ("Lax", "Strict", "None", None)
    assert c.lock_mode in ("exclusive", "optimistic", "none")
    assert c.conflict_resolution in ("raise", "mine", "theirs")
    assert c.fingerprint_policy in ("reset", "flag")
    assert set(c.fingerprint) <= {"user_agent", "ip"}
    assert isinstance(c.absolute_timeout, int | float) and c.absolute_timeout > 0
    assert isinstance(c.touch_threshold, int | float)
    assert 0 <= c.touch_threshold < c.idle_timeout
    for name in ("idle_timeout", "lock_lease", "max_bytes", "lock_backoff", "lock_backoff_max"):
        assert getattr(c, name) > 0, name
    for name in ("lock_wait", "regenerate_grace", "cookie_lifetime"):
        assert getattr(c, name) >= 0, name
    assert c.gc_probability >= 0 and c.gc_divisor > 0
    assert 0 < c.ipv4_prefix <= 32 and 0 < c.ipv6_prefix <= 128
    if c.cookie_samesite == "None" or c.cookie_partitioned:
        assert c.cookie_secure
    if c.cookie_name.startswith(("__Secure-", "__Host-")):
        assert c.cookie_secure
    if c.host_prefixed:
        assert c.cookie_path == "/" and c.cookie_domain is None


@FAST
@given(kwargs=config_kwargs)
def test_config_builds_or_raises_config_error_only(kwargs: dict[str, object]) -> None:
    try:
        c = Config(**kwargs)  # type: ignore[arg-type]
    except ConfigError:
        return
    _check_invariants(c)
    # case-insensitive choices keep their meaning
    for name in ("lock_mode", "conflict_resolution", "fingerprint_policy", "cookie_samesite"):
        given_value = kwargs.get(name)
        if isinstance(given_value, str):
            assert str(getattr(c, name)).lower() == given_value.lower()


def _issue_cookie(c: Config, now: float) -> None:
    engine = Engine(c)
    state = engine.fresh(now, Client(user_agent="ua", ip="203.0.113.9"))
    header = set_cookie(c, CookieAction(state.id, engine.max_age(state, now)), now=now)
    assert len(header.encode()) <= 4096
    assert engine.parse(session_cookie(header.split(";")[0], c.cookie_name)) == state.id


@FAST
@given(
    kwargs=config_kwargs,
    lifetime=st.one_of(st.integers(0, 100 * 365 * 86400), st.floats(0, 3e9)),
    now=st.floats(0, 4e9),
)
def test_a_built_config_can_issue_its_session_cookie(
    kwargs: dict[str, object], lifetime: float, now: float
) -> None:
    """Whatever Config accepts (with a cookie_lifetime of up to a century), a session under
    it can send its cookie, within the 4096 bytes a browser keeps."""
    try:
        c = Config(**{**kwargs, "cookie_lifetime": lifetime})  # type: ignore[arg-type]
    except ConfigError:
        return
    _issue_cookie(c, now)


@settings(max_examples=20, deadline=None)
@given(lifetime=st.one_of(st.just(float("inf")), st.floats(3e11, 1e300)))
def test_config_refuses_cookie_lifetimes_no_cookie_can_carry(lifetime: float) -> None:
    try:
        c = Config(cookie_lifetime=lifetime)
    except ConfigError:
        return
    _issue_cookie(c, 1.7e9)
