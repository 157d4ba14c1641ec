"""Properties of option validation (coatcheck.config): whatever options an app passes, it
gets a Config that a session can run under, or a ConfigError at start-up."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coatcheck import Client, Config, ConfigError, SessionManager, SessionTooLarge, open_store
from coatcheck.cookies import session_cookie

from .strategies import examples

FLOAT_OPTIONS = [
    "idle_timeout",
    "absolute_timeout",
    "touch_threshold",
    "cookie_lifetime",
    "lock_lease",
    "lock_wait",
    "lock_backoff",
    "lock_backoff_max",
    "regenerate_grace",
]

numbers = st.one_of(
    st.integers(-10, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 0.0, -0.0, 1e-300, 1, 60, 1440, 43200, 4e9]),
)
# Within these, a Config is expected to work end to end; past them see the xfails below.
sane_numbers = st.one_of(
    st.integers(-10, 10**7),
    st.floats(max_value=1e9),
    st.sampled_from([math.nan, -math.inf]),
    st.sampled_from([0, 0.0, -0.0, 1e-9, 1, 60, 1440, 43200, 1e9]),
)
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
text = st.one_of(
    st.sampled_from(
        [
            "/",
            "/app",
            "session",
            "__Host-x",
            "__Secure-x",
            "example.com",
            ".a.b",
            "a-.b",
            "123",
            "a b",
            "a;b",
            "x" * 5000,
            "/\x00",
            "/é",
            "/a,b",
            "/\x7f",
            "-a.com",
        ]
    ),
    st.text(max_size=30),
)


def _options(number: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "cookie_name": text,
        "cookie_path": text,
        "cookie_domain": st.none() | text,
        "cookie_secure": st.booleans(),
        "cookie_httponly": st.booleans(),
        "cookie_samesite": st.none() | choice,
        "cookie_partitioned": st.booleans(),
        "id_bytes": st.integers(-5, 200),
        "gc_probability": st.integers(-3, 1000),
        "gc_divisor": st.integers(-3, 1000),
        "lazy_write": st.booleans(),
        "max_bytes": st.integers(-3, 10**9),
        "lock_mode": choice,
        "conflict_resolution": choice,
        "fingerprint": st.lists(
            st.sampled_from(["user_agent", "ip", "IP", "User_Agent"]) | st.text(max_size=5),
            max_size=3,
        ).map(tuple),
        "ipv4_prefix": st.integers(-3, 200),
        "ipv6_prefix": st.integers(-3, 200),
        "fingerprint_policy": choice,
    }
    for name in FLOAT_OPTIONS:
        optional[name] = (
            st.none() | number if name in ("absolute_timeout", "touch_threshold") else number
        )
    return st.fixed_dictionaries({}, optional=optional)


def _check_invariants(c: Config, given_options: dict[str, Any]) -> None:
    assert re.fullmatch(r"[!#$%&'*+\-^_`|~0-9A-Za-z]+", c.cookie_name)
    assert not c.cookie_name.isdigit()
    assert c.cookie_path.startswith("/")
    for attr in (c.cookie_path, c.cookie_domain or ""):
        assert attr.isascii() and not re.search(r"[;,\x00-\x1f\x7f]", attr)
    if c.cookie_domain is not None:
        assert re.fullmatch(r"\.?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?", c.cookie_domain)
    assert 32 <= c.id_bytes <= 64
    assert c.cookie_samesite in ("Lax", "Strict", "None", None)
    assert c.lock_mode in ("exclusive", "optimistic", "none")
    assert c.conflict_resolution in ("raise", "mine", "theirs")
    assert c.fingerprint_policy in ("reset", "flag")
    assert set(c.fingerprint) <= {"user_agent", "ip"}
    for name in ("idle_timeout", "absolute_timeout", "lock_lease", "max_bytes", "lock_backoff"):
        assert getattr(c, name) > 0, name
    assert c.lock_backoff_max > 0
    for name in ("touch_threshold", "lock_wait", "regenerate_grace", "cookie_lifetime"):
        assert getattr(c, name) >= 0, name
    assert c.touch_threshold < c.idle_timeout  # else a lazy session would never be touched
    if given_options.get("absolute_timeout") is None:
        assert c.absolute_timeout == max(12 * 3600.0, c.idle_timeout)
    if given_options.get("touch_threshold") is None:
        assert c.touch_threshold == min(60.0, c.idle_timeout / 4)
    assert c.gc_probability >= 0 and c.gc_divisor > 0
    assert 0 < c.ipv4_prefix <= 32 and 0 < c.ipv6_prefix <= 128
    if c.cookie_samesite == "None" or c.cookie_partitioned:
        assert c.cookie_secure  # browsers refuse these cookies otherwise
    if c.cookie_name.startswith(("__Secure-", "__Host-")):
        assert c.cookie_secure
    if c.host_prefixed:
        assert c.cookie_path == "/" and c.cookie_domain is None
    for name in ("lock_mode", "conflict_resolution", "fingerprint_policy", "cookie_samesite"):
        value = given_options.get(name)
        if isinstance(value, str):  # choices are taken in any letter case, meaning kept
            assert str(getattr(c, name)).lower() == value.lower()


@examples(300)
@given(options=_options(numbers))
def test_options_build_a_valid_config_or_raise_config_error(options: dict[str, Any]) -> None:
    try:
        c = Config(**options)
    except ConfigError as e:
        assert isinstance(e, ValueError)
        return
    _check_invariants(c, options)


NOW = 1.0e9
CLIENT = Client(user_agent="agent", ip="203.0.113.9")


@examples(150)
@given(options=_options(sane_numbers))
def test_a_built_config_runs_a_session_and_sends_its_cookie(options: dict[str, Any]) -> None:
    """Validation happens once, at start-up: nothing a Config accepted fails a request."""
    try:
        c = Config(**options)
    except ConfigError:
        return
    manager = SessionManager(open_store("memory://"), c, clock=lambda: NOW)
    s = manager.start(None, client=CLIENT)
    s["user"] = 42
    try:
        s.write_close()
    except SessionTooLarge:
        assert c.max_bytes < 200  # the documented refusal, for a tiny max_bytes only
        return
    header = s.set_cookie_header()
    assert header is not None and len(header.encode()) <= 4096
    assert session_cookie(header.split(";")[0], c.cookie_name) == s.id
    action = s.cookie()
    assert action is not None
    if action.max_age is not None:
        assert 0 <= action.max_age <= s.expires_at - NOW + 1
    if NOW + c.idle_timeout > NOW and c.absolute_timeout > 0 and not math.isnan(NOW):
        again = manager.start(s.id, client=CLIENT)
        assert dict(again) == {"user": 42} and not again.is_new
        again.abort()


def _run_a_request(options: dict[str, Any]) -> None:
    manager = SessionManager(open_store("memory://"), Config(**options), clock=lambda: NOW)
    s = manager.start(None, client=Client(user_agent="agent", ip="10.1.2.3"))
    s["user"] = 42
    s.write_close()
    s.set_cookie_header()


def test_an_infinite_cookie_lifetime_is_refused_or_works() -> None:
    try:
        options = {"cookie_lifetime": math.inf}
        Config(**options)
    except ConfigError:
        return
    _run_a_request(options)


def test_a_huge_cookie_lifetime_is_refused_or_works() -> None:
    options = {"idle_timeout": 1e300, "cookie_lifetime": 1e300}
    try:
        Config(**options)
    except ConfigError:
        return
    _run_a_request(options)


@pytest.mark.parametrize(
    "options",
    [
        {"id_bytes": 40.0},
        {"gc_divisor": 2.5, "gc_probability": 1},
        {"ipv4_prefix": 8.5, "fingerprint": ("ip",)},
    ],
    ids=["id_bytes", "gc_divisor", "ipv4_prefix"],
)
def test_a_float_for_an_integer_option_is_refused_or_works(options: dict[str, Any]) -> None:
    try:
        Config(**options)
    except ConfigError:
        return
    for _ in range(20):  # gc_divisor: the GC draw runs on some requests only
        _run_a_request(options)


@pytest.mark.parametrize(
    "options",
    [{"cookie_name": None}, {"cookie_path": None}, {"id_bytes": "32"}, {"lock_wait": "10"}],
    ids=["cookie_name", "cookie_path", "id_bytes", "lock_wait"],
)
def test_a_mistyped_option_raises_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Config(**options)
