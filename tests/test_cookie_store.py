"""cookie://: the whole session in its cookie, sealed (AES-256-GCM under a key list).

Managers drive the store as every web adapter does (the adapters run in
tests/test_cookie_store_web.py). Revocation lists run on real SQLite and Redis.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from coatcheck import AsyncSessionManager, Client, Config, SessionManager, open_store
from coatcheck.cookies import set_cookie
from coatcheck.crypto import Keyring, new_key
from coatcheck.errors import ConfigError, CookieTooLarge, SessionTooLarge
from coatcheck.ids import storage_key
from coatcheck.stores import open_async_store
from coatcheck.stores.base import AsyncStore, LockRequest, Store
from coatcheck.stores.cookie import AsyncCookieStore, CookieStore, seal
from coatcheck.stores.sqlite import AsyncSQLiteStore, SQLiteStore
from tests.support.redis import drop_namespace

from .services import REDIS_URL, require

OLD, NEW = new_key(), new_key()
UA = Client(user_agent="tests")
CONFIG_OPTIONS: dict[str, Any] = {
    "gc_probability": 0,
    "idle_timeout": 600,
    "absolute_timeout": 3600,
}
MARKER = "plaintext-marker-8c1f"


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


def manager(store: Store, clock: Clock | None = None, **options: Any) -> SessionManager:
    config = Config(**{**CONFIG_OPTIONS, **options})
    return SessionManager(store, config, clock=clock)


def login(m: SessionManager, **data: Any) -> str:
    """A new session with ``data``; returns the cookie the browser got."""
    s = m.begin(client=UA)
    s.update(data or {"user": "ada"})
    s.write_close()
    action = s.cookie()
    assert action is not None and action.value
    return action.value


def load(m: SessionManager, cookie: str | None) -> dict[str, Any] | None:
    """The data the cookie opens to, None when it gives a fresh session."""
    s = m.start(cookie, client=UA, read_only=True)
    return None if s.is_new else dict(s)


def raw(cookie: str) -> bytes:
    return base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))


def text(sealed: bytes) -> str:
    return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()


# --- round trips ------------------------------------------------------------------------------


def test_round_trip_sync_every_write_and_touch_sends_a_new_sealed_cookie() -> None:
    clock = Clock()
    m = manager(CookieStore(NEW), clock)
    cookie = login(m, n=1)
    assert load(m, cookie) == {"n": 1}
    s = m.start(cookie, client=UA)
    s["n"] += 1
    s.write_close()
    written = s.cookie()
    assert written is not None and written.value not in (None, cookie)
    assert load(m, written.value) == {"n": 2}
    # unchanged and within the touch threshold: nothing to send
    quiet = m.start(written.value, client=UA)
    quiet.write_close()
    assert quiet.cookie() is None and quiet.set_cookie_header() is None
    # unchanged past the touch threshold: a touch re-seals the later deadline
    clock.now += 300
    touched = m.start(written.value, client=UA)
    touched.write_close()
    action = touched.cookie()
    assert action is not None and action.value not in (None, written.value)
    assert m.start(action.value, client=UA).expires_at == pytest.approx(clock.now + 600)


async def test_round_trip_async() -> None:
    m = AsyncSessionManager(AsyncCookieStore([NEW]), Config(**CONFIG_OPTIONS))
    s = m.begin(client=UA)
    s["user"] = "ada"
    await s.write_close()
    first = s.cookie()
    assert first is not None and first.value is not None
    again = await m.start(first.value, client=UA)
    assert dict(again) == {"user": "ada"} and not again.is_new and again.id == s.id
    again["n"] = 1
    await again.write_close()
    second = again.cookie()
    assert second is not None and second.value not in (None, first.value)
    assert dict(await m.start(second.value, client=UA, read_only=True)) == {"user": "ada", "n": 1}


def test_an_untouched_fresh_session_sends_nothing_and_a_read_only_one_writes_nothing() -> None:
    m = manager(CookieStore(NEW))
    fresh = m.begin(client=UA)
    fresh.write_close()
    assert fresh.cookie() is None
    cookie = login(m)
    peek = m.start(cookie, client=UA, read_only=True)
    assert dict(peek) == {"user": "ada"} and peek.cookie() is None


def test_the_cookie_is_unreadable_without_the_key() -> None:
    m = manager(CookieStore(NEW))
    cookie = login(m, secret=MARKER, user="ada-lovelace-1815")
    assert MARKER not in cookie and "lovelace-1815" not in cookie
    decoded = raw(cookie)
    assert MARKER.encode() not in decoded and b"lovelace-1815" not in decoded
    s = m.start(cookie, client=UA)
    assert s.id not in cookie and s.id.encode() not in decoded  # nor the id
    # the same session sealed twice looks different (a random nonce each time)
    keyring = CookieStore(NEW).keyring
    assert seal(keyring, s.id, b"{}", 1e12) != seal(keyring, s.id, b"{}", 1e12)


# --- cookies that do not open -----------------------------------------------------------------


def test_a_tampered_byte_anywhere_gives_a_fresh_session() -> None:
    m = manager(CookieStore(NEW))
    cookie = login(m)
    sealed = raw(cookie)
    for i in range(len(sealed)):  # the format byte, key id, nonce, ciphertext and tag
        flipped = bytearray(sealed)
        flipped[i] ^= 0x01
        s = m.start(text(bytes(flipped)), client=UA)
        assert s.is_new and dict(s) == {}, i


@pytest.mark.parametrize(
    "value",
    ["", "x", "not base64 !", "A" * 43, "A" * 5000, "é" * 10, "====", "a.b", "Zm9v", "\x00"],
)
def test_garbage_gives_a_fresh_session(value: str) -> None:
    m = manager(CookieStore(NEW))
    s = m.start(value, client=UA)
    assert s.is_new and dict(s) == {}
    s["n"] = 1
    s.write_close()  # and the fresh session works
    action = s.cookie()
    assert action is not None and load(m, action.value) == {"n": 1}


def test_truncated_cookies_give_a_fresh_session() -> None:
    m = manager(CookieStore(NEW))
    cookie = login(m)
    for cut in (1, 2, 3, 4, 16, len(cookie) // 2, len(cookie) - 1):
        assert load(m, cookie[:-cut]) is None, cut
        assert load(m, cookie[cut:]) is None, cut


def test_a_cookie_sealed_under_another_key_gives_a_fresh_session() -> None:
    cookie = login(manager(CookieStore(OLD)))
    assert load(manager(CookieStore(new_key())), cookie) is None


def test_a_cookie_of_another_purpose_does_not_open() -> None:
    m = manager(CookieStore(NEW), fingerprint=())
    sid = m.begin(client=UA).id
    body = b'{"v":1,"c":%d}\n{"user":"eve"}' % int(time.time())
    ours = seal(CookieStore(NEW).keyring, sid, body, time.time() + 60)
    assert load(m, ours) == {"user": "eve"}  # sealed for the cookie store, it opens
    other = Keyring([NEW], purpose="another use of the same key")
    assert load(m, seal(other, sid, body, time.time() + 60)) is None


def test_begin_refuses_a_cookie_start_loads_it() -> None:
    m = manager(CookieStore(NEW))
    with pytest.raises(ValueError, match="start"):
        m.begin("anything", client=UA)
    assert m.names_session("anything") and not m.names_session(None)
    assert not m.names_session("")


# --- keys -------------------------------------------------------------------------------------


def test_rotation_old_cookies_open_and_are_resealed_under_the_newest_key() -> None:
    before = manager(CookieStore([OLD]))
    cookie = login(before)
    rotated = manager(CookieStore([NEW, OLD]))
    s = rotated.start(cookie, client=UA)
    assert dict(s) == {"user": "ada"}
    s.write_close()  # nothing changed, yet the cookie is sent again under the new key
    resealed = s.cookie()
    assert resealed is not None and resealed.value is not None
    only_new = manager(CookieStore([NEW]))
    assert load(only_new, resealed.value) == {"user": "ada"}
    # once the old key is removed, a cookie still sealed under it gives a fresh session
    assert load(only_new, cookie) is None
    # a cookie already under the newest key is not re-sent for nothing
    quiet = rotated.start(resealed.value, client=UA)
    quiet.write_close()
    assert quiet.cookie() is None


def test_keys_come_from_the_environment_never_from_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CC_TEST_COOKIE_KEYS", f"{NEW},{OLD}")
    cookie = login(manager(CookieStore(OLD)))
    store = open_store("cookie://?keys=env:CC_TEST_COOKIE_KEYS")
    assert isinstance(store, CookieStore) and load(manager(store), cookie) == {"user": "ada"}
    assert isinstance(open_async_store("cookie://?keys=env:CC_TEST_COOKIE_KEYS"), AsyncStore)
    with pytest.raises(ConfigError, match="keys never go in a URL"):
        open_store(f"cookie://?keys={NEW}")
    with pytest.raises(ConfigError, match="env:VARIABLE"):
        open_store("cookie://")
    with pytest.raises(ConfigError, match="drop encrypt="):  # sealed already: refused at open
        open_store("cookie://?keys=env:CC_TEST_COOKIE_KEYS&encrypt=env:CC_TEST_COOKIE_KEYS")
    with pytest.raises(ConfigError, match="CC_TEST_UNSET"):
        open_store("cookie://?keys=env:CC_TEST_UNSET")
    short = base64.urlsafe_b64encode(b"k" * 31).decode().rstrip("=")
    monkeypatch.setenv("CC_TEST_SHORT", short)
    with pytest.raises(ConfigError, match="at least 32"):
        open_store("cookie://?keys=env:CC_TEST_SHORT")
    with pytest.raises(ConfigError, match="at least 32"):
        CookieStore(b"k" * 31)
    with pytest.raises(ConfigError, match="names no host"):
        open_store("cookie://host/path?keys=env:CC_TEST_COOKIE_KEYS")
    with pytest.raises(ConfigError, match="unknown cookie store option"):
        open_store("cookie://?keys=env:CC_TEST_COOKIE_KEYS&nosuch=1")
    with pytest.raises(ConfigError, match="server store"):
        open_store("cookie://?keys=env:CC_TEST_COOKIE_KEYS&revocations=cookie%3A%2F%2F")
    with pytest.raises(ConfigError, match="cookie_limit"):
        open_store("cookie://?keys=env:CC_TEST_COOKIE_KEYS&cookie_limit=5000")


# --- expiry -----------------------------------------------------------------------------------


def test_an_expired_cookie_replayed_gives_a_fresh_session() -> None:
    clock = Clock()
    m = manager(CookieStore(NEW), clock)
    cookie = login(m)
    clock.now += 599
    assert load(m, cookie) == {"user": "ada"}
    clock.now += 2  # past the idle deadline sealed inside
    s = m.start(cookie, client=UA)
    assert s.is_new and s.is_expired and dict(s) == {}


def test_the_absolute_timeout_inside_the_cookie_caps_a_session_kept_busy() -> None:
    clock = Clock()
    m = manager(CookieStore(NEW), clock)
    cookie = login(m, n=0)
    for _ in range(7):  # a write every 500 s keeps the idle deadline ahead...
        clock.now += 500
        s = m.start(cookie, client=UA)
        assert not s.is_new
        s["n"] += 1
        s.write_close()
        action = s.cookie()
        assert action is not None and action.value is not None
        cookie = action.value
    clock.now += 500  # ...until the absolute deadline, 3600 s after creation
    s = m.start(cookie, client=UA)
    assert s.is_new and s.is_expired


# --- size -------------------------------------------------------------------------------------


def test_over_4096_bytes_raises_cookie_too_large_and_nothing_is_sent() -> None:
    m = manager(CookieStore(NEW))
    cookie = login(m)
    s = m.start(cookie, client=UA)
    s["blob"] = "x" * 4000
    with pytest.raises(CookieTooLarge) as raised:
        s.write_close()
    assert isinstance(raised.value, SessionTooLarge) and raised.value.limit == 4096
    message = str(raised.value)
    assert "4096" in message and "store less" in message and "server-side store" in message
    assert s.cookie() is None  # no broken cookie: the browser keeps the one it has
    assert load(m, cookie) == {"user": "ada"}


def test_the_limit_counts_name_value_and_attributes() -> None:
    config = Config(**CONFIG_OPTIONS, cookie_lifetime=86400, cookie_domain="example.com")
    m = SessionManager(CookieStore(NEW), config)
    low, high = 0, 4096  # the largest value that still fits, by bisection
    largest = None
    while low + 1 < high:
        mid = (low + high) // 2
        s = m.begin(client=UA)
        s["v"] = "x" * mid
        try:
            s.write_close()
        except CookieTooLarge:
            high = mid
        else:
            low, largest = mid, s
            header = s.set_cookie_header()
            assert header is not None and len(header) <= 4096
    assert largest is not None and low > 2500  # the browser's limit, not a much lower guess
    line = largest.set_cookie_header()
    assert line is not None and "Max-Age=" in line and "Domain=example.com" in line
    assert 4096 - len(line) < 40  # the widest Max-Age and Expires: a few bytes of margin
    action = largest.cookie()
    assert action is not None and len(set_cookie(config, action, now=0)) <= 4096


def test_a_lower_cookie_limit_leaves_room_for_other_cookies() -> None:
    m = manager(CookieStore(NEW, cookie_limit=1024))
    s = m.begin(client=UA)
    s["v"] = "x" * 900
    with pytest.raises(CookieTooLarge, match="1024"):
        s.write_close()


# --- regenerate, destroy, revocation ----------------------------------------------------------


def test_regenerate_gives_a_new_id_and_a_new_cookie() -> None:
    m = manager(CookieStore(NEW))
    cookie = login(m)
    s = m.start(cookie, client=UA)
    old_id = s.id
    s.regenerate_id()
    s.write_close()
    action = s.cookie()
    assert action is not None and action.value not in (None, cookie)
    again = m.start(action.value, client=UA)
    assert dict(again) == {"user": "ada"} and again.id not in (old_id, "")
    # without a revocation list the old cookie stays valid until it expires (documented)
    assert load(m, cookie) == {"user": "ada"}


def test_destroy_expires_the_cookie() -> None:
    m = manager(CookieStore(NEW))
    s = m.start(login(m), client=UA)
    s.destroy()
    action = s.cookie()
    assert action is not None and action.value is None and action.max_age == 0


@pytest.fixture
def redis_url() -> Iterator[str]:
    require("127.0.0.1", 6379, "redis")
    url = f"{REDIS_URL}?prefix=cc_cookie_{uuid.uuid4().hex[:10]}:"
    yield url
    drop_namespace(url)


@pytest.fixture(params=["sqlite", "redis"])
def revocations_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/revoked.db"
        return
    yield request.getfixturevalue("redis_url")


def test_logout_then_replay_gives_a_fresh_session(revocations_url: str) -> None:
    store = CookieStore(NEW, revocations=open_store(revocations_url))
    try:
        m = manager(store)
        cookie = login(m)
        s = m.start(cookie, client=UA)
        key = storage_key(s.id)
        s.destroy()
        assert load(m, cookie) is None  # the copy an attacker kept is refused
        assert store.revocations is not None and store.revocations.validate_id(key)
        # other sessions are not affected
        other = login(m, user="grace")
        assert load(m, other) == {"user": "grace"}
    finally:
        store.close()


def test_regenerate_revokes_the_old_cookie(revocations_url: str) -> None:
    store = CookieStore(NEW, revocations=open_store(revocations_url))
    try:
        m = manager(store)
        cookie = login(m)
        s = m.start(cookie, client=UA)
        s.regenerate_id(grace=30)  # no cookie can forward to the new id: revoked at once
        s.write_close()
        action = s.cookie()
        assert action is not None and action.value is not None
        assert load(m, cookie) is None
        assert load(m, action.value) == {"user": "ada"}
    finally:
        store.close()


async def test_logout_then_replay_async(revocations_url: str) -> None:
    store = AsyncCookieStore(NEW, revocations=open_async_store(revocations_url))
    try:
        m = AsyncSessionManager(store, Config(**CONFIG_OPTIONS))
        s = m.begin(client=UA)
        s["user"] = "ada"
        await s.write_close()
        first = s.cookie()
        assert first is not None and first.value is not None
        loaded = await m.start(first.value, client=UA)
        assert dict(loaded) == {"user": "ada"}
        loaded.clear()  # emptied: the adapters destroy it, as here
        await loaded.destroy()
        replay = await m.start(first.value, client=UA)
        assert replay.is_new and dict(replay) == {}
    finally:
        await store.close()


def test_revocations_by_url_and_a_logout_by_key(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("CC_TEST_COOKIE_KEYS", NEW)
    inner = f"sqlite:///{tmp_path}/revoked.db"
    store = open_store(f"cookie://?keys=env:CC_TEST_COOKIE_KEYS&revocations={quote(inner, '')}")
    assert isinstance(store, CookieStore) and isinstance(store.revocations, SQLiteStore)
    m = manager(store)
    cookie = login(m)
    sid = m.start(cookie, client=UA, read_only=True).id
    store.destroy(storage_key(sid))  # "log out everywhere", by the session's key
    assert load(m, cookie) is None
    store.close()


def test_revocation_entries_expire_with_the_session_and_gc_deletes_them(tmp_path: Path) -> None:
    clock = Clock()
    revoked = SQLiteStore(str(tmp_path / "revoked.db"))
    store = CookieStore(NEW, revocations=revoked)
    m = manager(store, clock)
    assert m.engine.gc_due() is False  # gc_probability=0 here; the store does need GC
    assert not store.expires_itself
    s = m.start(login(m), client=UA)
    key = storage_key(s.id)
    s.destroy()
    assert revoked.validate_id(key)
    clock.now += 3600  # the session's absolute deadline: no copy of it opens any more
    assert not revoked.validate_id(key)
    assert m.gc() == 1
    assert CookieStore(NEW).gc() == 0  # nothing server-side without a list
    store.close()


def test_a_load_asks_the_revocation_list_once_and_a_list_less_store_never(
    tmp_path: Path,
) -> None:
    calls: list[str] = []

    class Counting(SQLiteStore):
        def validate_id(self, key: str) -> bool:
            calls.append("validate_id")
            return super().validate_id(key)

    store = CookieStore(NEW, revocations=Counting(str(tmp_path / "revoked.db")))
    m = manager(store)
    cookie = login(m)
    assert calls == []  # a new session asks nothing
    s = m.start(cookie, client=UA)
    s["n"] = 1
    s.reset()  # a second read of the same record
    s.write_close()
    assert calls == ["validate_id"]
    store.close()


# --- locking, listing -------------------------------------------------------------------------


def test_locks_are_ignored_and_the_last_write_wins() -> None:
    m = manager(CookieStore(NEW))
    cookie = login(m, n=0)
    first = m.start(cookie, client=UA, lock_mode="exclusive")
    second = m.start(cookie, client=UA, lock_mode="exclusive")  # never LOCKED, never waits
    first["n"], second["n"] = 1, 2
    first.write_close()
    second.write_close()
    a, b = first.cookie(), second.cookie()
    assert a is not None and b is not None and a.value and b.value
    assert load(m, a.value) == {"n": 1} and load(m, b.value) == {"n": 2}
    store = CookieStore(NEW)
    assert store.read(storage_key(first.id), LockRequest("t", 5)) is None


def test_the_server_cannot_count_or_list_cookie_sessions() -> None:
    store = CookieStore(NEW)
    with pytest.raises(NotImplementedError, match="cannot count or list"):
        store.count()
    with pytest.raises(NotImplementedError, match="cannot count or list"):
        list(store.scan())
    with pytest.raises(NotImplementedError, match="SessionManager"):
        store.write("0" * 64, b"{}", 1e12)
    assert store.validate_id("0" * 64) is False


def test_cli_stats_says_why_it_cannot(monkeypatch: Any, capsys: Any) -> None:
    from coatcheck.cli import main

    monkeypatch.setenv("CC_TEST_COOKIE_KEYS", NEW)
    assert main(["stats", "--store", "cookie://?keys=env:CC_TEST_COOKIE_KEYS"]) == 2
    assert "cannot count or list" in capsys.readouterr().err


def test_an_injected_clock_reaches_the_revocation_list(tmp_path: Path) -> None:
    clock = Clock()
    revoked = AsyncSQLiteStore(str(tmp_path / "revoked.db"))
    store = AsyncCookieStore(NEW, revocations=revoked)
    AsyncSessionManager(store, Config(**CONFIG_OPTIONS), clock=clock)
    assert store.clock is clock and revoked.clock is clock


def test_the_docs_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_docs import ROOT, read_blocks

    page = ROOT / "docs" / "stores" / "cookie.md"
    blocks = [b for b in read_blocks(page) if b.runnable]
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COATCHECK_COOKIE_KEYS", "")  # the page sets it; restored after
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for block in blocks:
        exec(compile("\n" * (block.line - 1) + block.code, str(page), "exec"), namespace)
