"""Properties of the Cookie parser and the Set-Cookie builder (coatcheck.cookies)."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coatcheck import Config, ids
from coatcheck.cookies import CookieAction, session_cookie, session_cookie_values, set_cookie
from coatcheck.engine import Engine

from .strategies import examples, nasty_text, well_formed_id

NAMES = ["session", "sid", "__Host-s", "a"]
ENGINES = {name: Engine(Config(cookie_name=name)) for name in NAMES}

# a cookie header made of pairs, some named like the session cookie, some with hostile text
cookie_pairs = st.lists(
    st.tuples(
        st.one_of(st.sampled_from([*NAMES, " session ", "Session", ""]), nasty_text),
        st.one_of(nasty_text, well_formed_id(), st.just("A" * 50_000)),
    ),
    max_size=6,
)


@examples(300)
@given(
    header=st.one_of(
        st.none(),
        nasty_text,
        cookie_pairs.map(lambda ps: "; ".join(f"{k}={v}" for k, v in ps)),
    ),
    name=st.sampled_from(NAMES),
)
def test_any_cookie_header_yields_a_well_formed_id_or_none(header: str | None, name: str) -> None:
    """Whatever a client sends, parsing never raises and only an id we could have issued
    gets past the engine (so nothing else reaches a store)."""
    values = session_cookie_values(header, name)
    assert len(values) == len(set(values))
    for v in values:
        assert ";" not in v
    value = session_cookie(header, name)
    assert value == (values[0] if len(values) == 1 else None)
    sid = ENGINES[name].parse(value)
    assert sid is None or re.fullmatch(r"[A-Za-z0-9_-]{43}", sid)
    if sid is not None:
        assert name in (header or "") and sid in (header or "")


junk_pairs = st.lists(
    st.tuples(
        st.from_regex(r"[a-z]{1,8}", fullmatch=True).filter(lambda k: k != "session"),
        nasty_text.filter(lambda s: ";" not in s),
    ),
    max_size=4,
)
padding = st.sampled_from(["", " ", "  ", "\t"])


@examples(200)
@given(
    sid=well_formed_id(),
    junk_before=junk_pairs,
    junk_after=junk_pairs,
    quoted=st.booleans(),
    pad=padding,
    copies=st.integers(1, 3),
)
def test_the_session_cookie_is_found_among_other_cookies(
    sid: str,
    junk_before: list[tuple[str, str]],
    junk_after: list[tuple[str, str]],
    quoted: bool,
    pad: str,
    copies: int,
) -> None:
    """Spaces, quotes, other cookies around it and identical duplicates don't hide it."""
    value = f'"{sid}"' if quoted else sid
    ours = [f"{pad}session{pad}={pad}{value}{pad}"] * copies
    parts = [f"{k}={v}" for k, v in junk_before] + ours + [f"{k}={v}" for k, v in junk_after]
    header = ";".join(parts)
    assert session_cookie(header, "session") == sid
    assert ENGINES["session"].parse(session_cookie(header, "session")) == sid


@examples(200)
@given(first=well_formed_id(), second=well_formed_id(), junk=junk_pairs)
def test_two_different_session_cookies_name_no_session(
    first: str, second: str, junk: list[tuple[str, str]]
) -> None:
    """A second value (tossed from a sibling subdomain, or set for a deeper path) could be
    an attacker's fixed id, and the order does not say which is ours: trust neither."""
    if first == second:
        return
    header = "; ".join([f"session={first}", *(f"{k}={v}" for k, v in junk), f"session={second}"])
    assert session_cookie(header, "session") is None
    assert session_cookie_values(header, "session") == [first, second]


@examples(50)
@given(size=st.integers(44, 200_000), char=st.sampled_from("A_-\x00é;\r\n\"'/."))
def test_long_or_odd_values_never_become_ids(size: int, char: str) -> None:
    for value in (char * size, "A" * 42 + char, "../" + "A" * 40):
        got = ENGINES["session"].parse(session_cookie(f"session={value}", "session"))
        assert got is None or ids.is_well_formed(got)
    assert ENGINES["session"].parse(session_cookie(f"session={'A' * size}", "session")) is None


def _split_set_cookie(text: str) -> tuple[str, str, dict[str, str | bool]]:
    """A strict RFC 6265 (5.2) split of a Set-Cookie value, independent of coatcheck's code."""
    first, *attrs = text.split("; ")
    name, sep, value = first.partition("=")
    assert sep, text
    out: dict[str, str | bool] = {}
    for a in attrs:
        k, sep, v = a.partition("=")
        assert k.lower() not in out, f"attribute {k} twice"
        out[k.lower()] = v if sep else True
    return name, value, out


@st.composite
def cookie_configs(draw: st.DrawFn) -> Config:
    name = draw(st.sampled_from(["session", "sid", "__Secure-s", "__Host-s", "x!#$%&'*+-^_`|~"]))
    host = name.startswith("__Host-")
    return Config(
        cookie_name=name,
        cookie_path="/" if host else draw(st.sampled_from(["/", "/app", "/a/b-c_d"])),
        cookie_domain=None if host else draw(st.sampled_from([None, "example.com", ".a-b.org"])),
        cookie_secure=True,
        cookie_httponly=draw(st.booleans()),
        cookie_samesite=draw(st.sampled_from(["Lax", "Strict", "None", None])),
        cookie_partitioned=draw(st.booleans()),
        id_bytes=draw(st.integers(32, 64)),
    )


@examples(200)
@given(
    config=cookie_configs(),
    max_age=st.one_of(st.none(), st.integers(0, 400 * 86400)),
    delete=st.booleans(),
    now=st.floats(0, 4e9),
)
def test_set_cookie_round_trips_through_parsers(
    config: Config, max_age: int | None, delete: bool, now: float
) -> None:
    """What we send parses back (by a strict split, by the standard library, and, echoed
    by the browser, by our own parser) to exactly the id and attributes configured."""
    sid = ids.new_id(config.id_bytes)
    action = CookieAction(None, 0) if delete else CookieAction(sid, max_age)
    header = set_cookie(config, action, now=now)
    assert not re.search(r"[\r\n\x00]", header)
    assert len(header.encode()) <= 4096
    name, value, attrs = _split_set_cookie(header)
    assert (name, value) == (config.cookie_name, "" if delete else sid)
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
        assert attrs["max-age"] == str(max_age) and "expires" in attrs
    if not delete:
        echoed = f"other=1; {name}={value}"
        assert Engine(config).parse(session_cookie(echoed, config.cookie_name)) == sid
    if config.cookie_partitioned:
        return  # SimpleCookie predates the Partitioned attribute
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    morsel = jar[config.cookie_name]
    assert morsel.value == value
    assert morsel["path"] == config.cookie_path
    assert morsel["domain"] == (config.cookie_domain or "")
    assert bool(morsel["secure"]) == config.cookie_secure
    assert bool(morsel["httponly"]) == config.cookie_httponly
    assert morsel["samesite"] == (config.cookie_samesite or "")
    if not delete and max_age is not None:
        assert morsel["max-age"] == str(max_age)


@examples(100)
@given(
    before=st.text(max_size=30),
    splitter=st.sampled_from(";\r\n\x00"),
    after=st.text(max_size=30),
)
def test_set_cookie_refuses_values_that_would_split_the_header(
    before: str, splitter: str, after: str
) -> None:
    with pytest.raises(ValueError):
        set_cookie(Config(), CookieAction(before + splitter + after, None), now=0)
