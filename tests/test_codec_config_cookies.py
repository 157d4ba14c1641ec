"""Codec, record envelope, config validation and cookie headers."""

from __future__ import annotations

import pytest

from coatcheck import Client, Config, ConfigError, EncodeError, codec, events, record
from coatcheck.cookies import CookieAction, http_date, session_cookie, set_cookie
from coatcheck.web.common import request_cookie


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"s": "nul\x00 emoji 🧥 \u2028", "i": 2**63 - 1, "neg": -(2**63), "u": 2**64 - 1},
        {"big": 2**200, "nested": [{"big": -(2**70)}]},
        {"f": 1e308, "tiny": 5e-324, "list": [None, True, False, 0.1]},
    ],
)
def test_codec_round_trips_exactly(data: dict[str, object]) -> None:
    raw, big = codec.encode(data)
    back = codec.decode(raw, big)
    assert back == data
    assert [type(v) for v in back.values()] == [type(v) for v in data.values()]


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), (1, 2), b"x", {1, 2}, object(), {"k": {3: 1}}],
)
def test_codec_refuses_what_json_would_change(value: object) -> None:
    with pytest.raises(EncodeError):
        codec.encode({"v": value})


def test_codec_refuses_absurd_nesting() -> None:
    deep: object = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(EncodeError, match="nested"):
        codec.encode({"d": deep})


def test_record_envelope_round_trip_and_rejects_foreign_bytes() -> None:
    h = record.Header(created=1.5, idle=10, fingerprint="ab", big=True)
    header, data = record.unpack(record.pack(h, b'{"a":1}'))
    assert header == h and data == b'{"a":1}'
    for bad in (
        b"",
        b"{}",
        b"[]\n{}",
        b'{"v":1,"c":"x"}\n{}',
        b"\xff\n{}",
        b'{"v":1,"c":1,"j":1}\n',
    ):
        with pytest.raises(ValueError):
            record.unpack(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cookie_name": "bad name"}, "RFC 6265"),
        ({"cookie_name": "123"}, "non-numeric"),
        ({"cookie_name": "a;b"}, "RFC 6265"),
        ({"cookie_path": "/a;b"}, "cookie_path"),
        ({"cookie_domain": "x\r\n.com"}, "cookie_domain"),
        ({"cookie_path": "relative"}, "start with"),
        ({"cookie_samesite": "None", "cookie_secure": False}, "requires cookie_secure"),
        ({"cookie_partitioned": True, "cookie_secure": False}, "requires cookie_secure"),
        ({"cookie_name": "__Host-s", "cookie_domain": "example.com"}, "__Host-"),
        ({"cookie_name": "__Host-s", "cookie_path": "/app"}, "__Host-"),
        ({"cookie_name": "__Secure-s", "cookie_secure": False}, "__Secure-"),
        ({"id_bytes": 16}, "256 bits"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"touch_threshold": 5000}, "touch_threshold"),
        ({"gc_divisor": 0}, "gc_divisor"),
        ({"lock_mode": "maybe"}, "lock_mode"),
        ({"fingerprint": ("user_agent", "mac")}, "fingerprint"),
        ({"ipv4_prefix": 33}, "ipv4_prefix"),
        ({"lock_wait": -1}, "lock_wait"),
    ],
)
def test_config_is_validated_at_start_up(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**options)  # type: ignore[arg-type]


def test_secure_defaults() -> None:
    header = set_cookie(Config(), CookieAction("abc", None))
    assert header == "session=abc; Path=/; Secure; HttpOnly; SameSite=Lax"


def test_set_cookie_attributes() -> None:
    c = Config(cookie_name="__Host-sid", cookie_partitioned=True, cookie_samesite="None")
    header = set_cookie(c, CookieAction("abc", 60), now=0)
    assert header == (
        "__Host-sid=abc; Path=/; Max-Age=60; Expires=Thu, 01 Jan 1970 00:01:00 GMT; "
        "Secure; HttpOnly; SameSite=None; Partitioned"
    )
    c = Config(
        cookie_domain="example.com",
        cookie_path="/app",
        cookie_secure=False,
        cookie_httponly=False,
        cookie_samesite=None,
    )
    deletion = set_cookie(c, CookieAction(None, 0))
    assert deletion == (
        "session=; Path=/app; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    )


@pytest.mark.parametrize("stamp", [0, 951782400, 1_700_000_000.7, 4_102_444_799, 1_582_934_400])
def test_http_date_is_the_imf_fixdate_of_the_standard_library(stamp: float) -> None:
    from email.utils import formatdate

    assert http_date(stamp) == formatdate(stamp, usegmt=True)


def test_set_cookie_refuses_header_splitting() -> None:
    with pytest.raises(ValueError):
        set_cookie(Config(), CookieAction("abc\r\nSet-Cookie: x=1", None))


def test_cookie_header_parsing() -> None:
    assert session_cookie("a=1; session=xyz; b=2", "session") == "xyz"
    assert session_cookie('session="quoted"', "session") == "quoted"
    assert session_cookie("sessionx=1; xsession=2", "session") is None
    assert session_cookie("garbage;;;=;session", "session") is None
    assert session_cookie(None, "session") is None
    assert session_cookie("", "session") is None


def test_different_values_for_the_session_cookie_name_use_none_of_them() -> None:
    # RFC 6265 5.4: longer paths, then older cookies first; a tossed cookie can come first
    assert session_cookie("session=tossed; session=mine", "session") is None
    assert session_cookie("session=mine; a=1; session=tossed", "session") is None
    assert session_cookie("session=same; a=1; session=same", "session") == "same"  # one value
    assert session_cookie('session="same"; session=same', "session") == "same"


def test_a_tossed_cookie_is_a_warning_without_any_id(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[events.SecurityEvent] = []
    stop = events.subscribe(seen.append)
    try:
        with caplog.at_level("WARNING", logger="coatcheck.security"):
            header = "session=attacker-id; session=victim-id"
            assert request_cookie(header, "session", Client(ip="192.0.2.7")) is None
            assert request_cookie("session=a; session=a", "session", Client()) == "a"
            assert request_cookie("other=1", "session", Client()) is None
    finally:
        stop()
    assert [(e.kind, e.session, e.client) for e in seen] == [
        ("duplicate_cookie", None, "192.0.2.7")
    ]
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "attacker-id" not in caplog.text and "victim-id" not in caplog.text


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"a": {"b": ["x", "\ud800"]}}, "value at session['a']['b'][1]"),
        ({"\udc00k": 1}, "key '\\udc00k' at session"),
        ({"n": 2**80, "x": "\udfff"}, "value at session['x']"),  # the big-int encoder too
    ],
)
def test_a_lone_surrogate_is_an_encode_error_naming_the_key(data: dict, where: str) -> None:
    with pytest.raises(EncodeError) as info:
        codec.encode(data)
    assert where in str(info.value) and "surrogate" in str(info.value)
