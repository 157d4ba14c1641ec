"""The framework-free parts every adapter shares: SessionData, the error bases and their
one mapping, the header policy, option spelling, dependent defaults and import hints."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import pytest

from coatcheck import (
    Config,
    ConfigError,
    Conflict,
    LockLost,
    LockTimeout,
    RetryLater,
    SessionClosed,
    SessionConflict,
    SessionGone,
    SessionManager,
    SessionTooLarge,
    StoreUnavailable,
    open_store,
)
from coatcheck.web.common import WebOptions, error_response, merge_headers, require


@pytest.fixture
def manager() -> SessionManager:
    return SessionManager(open_store("memory://"), Config(gc_probability=0))


def test_session_data_is_a_real_dict(manager: SessionManager) -> None:
    s = manager.start()
    s["cart"] = [1, 2]
    s.data["user"] = "ada"
    assert json.dumps(s.data, sort_keys=True) == '{"cart": [1, 2], "user": "ada"}'
    assert s.data == {"cart": [1, 2], "user": "ada"} and dict(s.data) == s.data
    assert type(copy.copy(s.data)) is dict and type(s.data.copy()) is dict
    deep = copy.deepcopy(s.data)
    deep["cart"].append(3)
    assert s["cart"] == [1, 2]  # a deep copy shares nothing
    s.write_close()
    again = manager.start(s.id)
    assert again.data == {"cart": [1, 2], "user": "ada"}


def test_session_data_refuses_changes_it_could_not_save(manager: SessionManager) -> None:
    s = manager.start()
    s["n"] = 1
    s.write_close()
    peek = manager.start(s.id, read_only=True)
    for change in (
        lambda d: d.__setitem__("n", 2),
        lambda d: d.update(n=2),
        lambda d: d.pop("n"),
        lambda d: d.clear(),
        lambda d: d.setdefault("m", 1),
        lambda d: d.popitem(),
    ):
        with pytest.raises(SessionClosed, match="read-only"):
            change(peek.data)
    assert peek.data.pop("absent", None) is None  # no change, no error
    assert peek.data == {"n": 1}
    with pytest.raises(SessionClosed):
        s.data["late"] = 1  # after write_close


def test_the_data_dict_survives_reset_destroy_and_regenerate(manager: SessionManager) -> None:
    s = manager.start()
    data = s.data
    s["a"] = 1
    s.regenerate_id()
    assert s.data is data and data == {"a": 1}
    s.write_close()
    t = manager.start(s.id)
    kept = t.data
    t["b"] = 2
    t.reset()
    assert t.data is kept and kept == {"a": 1}
    t.destroy(restart=True)
    assert t.data is kept and kept == {}


def test_sessions_expose_their_timeouts(manager: SessionManager) -> None:
    s = manager.start()
    assert not s.remembered and s.idle_timeout == 1440 and s.cookie_max_age is None
    s.remember(3600, 86400)
    assert s.remembered and s.idle_timeout == 3600 and s.absolute_timeout == 86400
    assert s.cookie_max_age == 3600
    assert s.expires_at == pytest.approx(manager.clock() + 3600, abs=5)


def test_error_bases_give_one_mapping() -> None:
    assert issubclass(StoreUnavailable, RetryLater) and issubclass(LockTimeout, RetryLater)
    for conflict in (LockLost, SessionConflict, SessionGone):
        assert issubclass(conflict, Conflict)
    status, headers, _ = error_response(StoreUnavailable("down"))
    assert status == 503 and ("Retry-After", "5") in headers
    status, headers, _ = error_response(LockTimeout("busy"))
    assert status == 503 and ("Retry-After", "1") in headers
    assert error_response(SessionConflict(["n"]))[0] == 409
    assert error_response(SessionGone("gone"))[0] == 409
    assert error_response(SessionTooLarge(10, 5))[0] == 500


def test_header_policy() -> None:
    ours = [("Set-Cookie", "s=1"), ("Vary", "Cookie"), ("Cache-Control", "private, no-store")]
    app = [("Vary", "Accept"), ("Cache-Control", "public, max-age=60"), ("Set-Cookie", "t=2")]
    merged = merge_headers(app, ours)
    assert ("Vary", "Accept, Cookie") in merged
    assert [v for n, v in merged if n == "Cache-Control"] == ["public, max-age=60"]
    assert [v for n, v in merged if n == "Set-Cookie"] == ["t=2", "s=1"]
    assert merge_headers([("vary", "*")], ours)[0] == ("vary", "*")
    assert ("Cache-Control", "private, no-store") in merge_headers([], ours)


def test_autoload_rules() -> None:
    rules = WebOptions(autoload=["/app", re.compile(r"^/api/v\d+/")])
    assert rules.autoloads("/app/x") and rules.autoloads("/api/v2/cart")
    assert not rules.autoloads("/api/vx/") and not rules.autoloads("/static/a.css")
    assert WebOptions(autoload=True).autoloads("/anything")
    with pytest.raises(ConfigError, match=r"write autoload=\['/app'\]"):
        WebOptions(autoload="/app")
    with pytest.raises(ConfigError, match=r"write autoload=\[re.compile"):
        WebOptions(autoload=re.compile("^/api"))  # type: ignore[arg-type]


def test_option_values_in_any_letter_case() -> None:
    c = Config(cookie_samesite="lax", lock_mode="Optimistic", fingerprint=("User_Agent",))
    assert (c.cookie_samesite, c.lock_mode, c.fingerprint) == ("Lax", "optimistic", ("user_agent",))
    other = Config(conflict_resolution="MINE", fingerprint_policy="Flag")
    assert (other.conflict_resolution, other.fingerprint_policy) == ("mine", "flag")
    with pytest.raises(ConfigError, match="cookie_samesite"):
        Config(cookie_samesite="loose")


def test_a_short_lifetime_needs_no_other_option() -> None:
    short = Config(idle_timeout=60)
    assert short.touch_threshold == 15 and short.absolute_timeout == 12 * 3600
    long = Config(idle_timeout=30 * 86400)
    assert long.absolute_timeout == 30 * 86400 and long.touch_threshold == 60
    assert Config(idle_timeout=60, touch_threshold=5).touch_threshold == 5


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"cookie_domain": "exa mple.com"}, "host name"),
        ({"cookie_domain": "exämple.com"}, "ASCII"),
        ({"cookie_path": "/caf\u00e9"}, "ASCII"),
        ({"cookie_name": "n" * 4000}, "4096-byte"),
    ],
)
def test_cookie_attributes_are_checked_at_config_time(option: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Config(**option)  # type: ignore[arg-type]


def test_a_missing_framework_names_the_extra_to_install() -> None:
    with pytest.raises(ImportError, match=r"pip install 'coatcheck\[nope\]'"):
        require("coatcheck_no_such_framework", "nope")
    code = "import sys; sys.modules['fastapi'] = None; import coatcheck.web.fastapi"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "pip install 'coatcheck[fastapi]'" in run.stderr
