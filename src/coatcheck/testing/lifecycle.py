"""The session lifecycle against a store, sync and async (part of the conformance suite)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from coatcheck import Client, EncodeError, IdCollision, SessionTooLarge
from coatcheck.ids import storage_key
from coatcheck.record import pack, unpack
from coatcheck.stores.base import Stored

from ._driver import Driver, aw

TRICKY: dict[str, Any] = {
    "nul": "a\x00b",
    "emoji": "coat 🧥 check",
    "big": 2**100,
    "neg_big": -(2**80),
    "float": 0.1,
    "nested": {"list": [1, "two", None, True, False, 3.5], "empty": {}},
    "unicode_key_ü": "ß",
}


async def stored(drv: Driver, sid: str) -> Stored | None:
    result = await aw(drv.store.read(storage_key(sid)))
    assert result is None or isinstance(result, Stored)
    return result


async def new_session(drv: Driver, data: dict[str, Any], **options: Any) -> str:
    m = drv.manager(**options)
    s = await aw(m.start())
    s.update(data)
    await aw(s.write_close())
    assert s.set_cookie_header() is not None
    sid: str = s.id
    return sid


async def test_round_trip_is_exact(drv: Driver) -> None:
    sid = await new_session(drv, TRICKY)
    s = await aw(drv.manager().start(sid))
    assert not s.is_new
    assert dict(s) == TRICKY
    assert type(s["big"]) is int
    await aw(s.abort())


async def test_unknown_id_is_never_adopted(drv: Driver) -> None:
    m = drv.manager()
    unknown = "A" * 43
    s = await aw(m.start(unknown))
    assert s.is_new and s.id != unknown
    s["x"] = 1
    await aw(s.write_close())
    assert s.id != unknown
    assert await stored(drv, unknown) is None
    assert s.set_cookie_header().startswith(f"session={s.id};")


async def test_untouched_new_session_creates_nothing(drv: Driver) -> None:
    m = drv.manager()
    s = await aw(m.start())
    _ = s.get("anything")
    await aw(s.write_close())
    assert s.set_cookie_header() is None
    assert await stored(drv, s.id) is None


async def test_lazy_write_skips_unchanged_sessions(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    before = await stored(drv, sid)
    s = await aw(drv.manager().start(sid))
    assert s["n"] == 1
    await aw(s.write_close())
    after = await stored(drv, sid)
    assert before is not None and after is not None
    assert after.version == before.version
    assert after.payload == before.payload
    assert s.set_cookie_header() is None  # the id did not change: no cookie


async def test_a_change_writes_and_bumps_the_version(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    before = await stored(drv, sid)
    s = await aw(drv.manager().start(sid))
    s["n"] += 1
    await aw(s.write_close())
    after = await stored(drv, sid)
    assert before is not None and after is not None
    assert after.version > before.version


async def test_deep_mutation_is_detected(drv: Driver) -> None:
    sid = await new_session(drv, {"cart": []})
    s = await aw(drv.manager().start(sid))
    s["cart"].append("coat")
    await aw(s.write_close())
    s = await aw(drv.manager().start(sid))
    assert s["cart"] == ["coat"]
    await aw(s.abort())


async def test_touch_moves_the_deadline_without_rewriting(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1}, touch_threshold=0.2)
    before = await stored(drv, sid)
    await drv.advance(0.6)
    s = await aw(drv.manager(touch_threshold=0.2).start(sid))
    await aw(s.write_close())
    after = await stored(drv, sid)
    assert before is not None and after is not None
    assert after.version == before.version and after.payload == before.payload
    assert after.expires_at >= before.expires_at + 0.4


async def test_below_the_threshold_nothing_is_sent(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1}, touch_threshold=60)
    before = await stored(drv, sid)
    s = await aw(drv.manager(touch_threshold=60).start(sid))
    await aw(s.write_close())
    after = await stored(drv, sid)
    assert before == after


async def test_idle_expiry(drv: Driver) -> None:
    options = {"idle_timeout": 1.0, "touch_threshold": 0.1}
    sid = await new_session(drv, {"secret": "x"}, **options)
    await drv.advance(1.3)
    s = await aw(drv.manager(**options).start(sid))
    assert "secret" not in s
    assert s.id != sid
    assert s.is_new or s.is_expired
    await aw(s.abort())


async def test_absolute_expiry_even_when_active(drv: Driver) -> None:
    options = {"idle_timeout": 30.0, "absolute_timeout": 1.0, "touch_threshold": 0.05}
    sid = await new_session(drv, {"secret": "x"}, **options)
    for _ in range(3):
        await drv.advance(0.45)
        s = await aw(drv.manager(**options).start(sid))
        s.touch()
        await aw(s.write_close())
    s = await aw(drv.manager(**options).start(sid))
    assert "secret" not in s and s.id != sid
    await aw(s.abort())


async def test_remember_me_extends_the_idle_timeout(drv: Driver) -> None:
    options = {"idle_timeout": 1.0, "touch_threshold": 0.1}
    m = drv.manager(**options)
    s = await aw(m.start())
    s["user"] = 7
    s.remember(idle=3600, absolute=7200)
    await aw(s.write_close())
    assert "Max-Age=3600" in (s.set_cookie_header() or "")
    await drv.advance(1.3)
    s2 = await aw(drv.manager(**options).start(s.id))
    assert s2.get("user") == 7
    await aw(s2.abort())


async def test_gc_removes_expired_sessions(drv: Driver) -> None:
    for _ in range(3):
        await new_session(drv, {"a": 1}, idle_timeout=1.0, touch_threshold=0.1)
    live = [await new_session(drv, {"b": 2}) for _ in range(2)]
    await drv.advance(1.3)
    removed = await aw(drv.manager().gc())
    assert removed == (0 if drv.expires_itself else 3)
    if drv.target.exact_count:
        assert await aw(drv.store.count()) == 2
    for sid in live:
        assert await stored(drv, sid) is not None


async def test_destroy_removes_data_and_deletes_the_cookie(drv: Driver) -> None:
    sid = await new_session(drv, {"user": 1})
    s = await aw(drv.manager().start(sid))
    await aw(s.destroy())
    header = s.set_cookie_header() or ""
    assert "Max-Age=0" in header
    assert await stored(drv, sid) is None
    replay = await aw(drv.manager().start(sid))
    assert replay.is_new and "user" not in replay
    await aw(replay.abort())


async def test_destroy_restart_then_new_data_sends_the_new_cookie(drv: Driver) -> None:
    """destroy(restart=True) and a login in the same request: the response names the new
    session, not a deletion cookie that would log the user out and orphan the record."""
    sid = await new_session(drv, {"user": "ann"})
    s = await aw(drv.manager().start(sid))
    await aw(s.destroy(restart=True))
    s["user"] = "bob"
    await aw(s.write_close())
    assert s.id != sid
    assert (s.set_cookie_header() or "").startswith(f"session={s.id};")
    assert await stored(drv, sid) is None
    after = await aw(drv.manager().start(s.id))
    assert not after.is_new and dict(after) == {"user": "bob"}
    await aw(after.abort())


async def test_destroy_restart_with_nothing_new_deletes_the_cookie(drv: Driver) -> None:
    sid = await new_session(drv, {"user": "ann"})
    s = await aw(drv.manager().start(sid))
    await aw(s.destroy(restart=True))
    await aw(s.write_close())
    assert "Max-Age=0" in (s.set_cookie_header() or "")
    assert await stored(drv, sid) is None and await stored(drv, s.id) is None


@pytest.mark.parametrize("lock_mode", ["exclusive", "optimistic", "none"])
async def test_emptied_then_written_session_gets_a_new_id(drv: Driver, lock_mode: str) -> None:
    """``clear()`` then a login (Flask's idiom): the new data never lives under the old id."""
    sid = await new_session(drv, {"user": "ann", "cart": [1]})
    s = await aw(drv.manager(lock_mode=lock_mode).start(sid))
    s.data.clear()
    s["user"] = "bob"
    await aw(s.write_close())
    assert s.id != sid
    assert (s.set_cookie_header() or "").startswith(f"session={s.id};")
    assert await stored(drv, sid) is None
    old = await aw(drv.manager().start(sid))
    assert old.is_new and "user" not in old
    await aw(old.abort())
    new = await aw(drv.manager().start(s.id))
    assert dict(new) == {"user": "bob"}
    await aw(new.abort())


async def test_every_key_deleted_then_written_gets_a_new_id(drv: Driver) -> None:
    sid = await new_session(drv, {"user": "ann", "cart": [1]})
    s = await aw(drv.manager().start(sid))
    del s["user"]
    s.pop("cart")
    s["user"] = "bob"
    await aw(s.write_close())
    assert s.id != sid and await stored(drv, sid) is None
    assert (s.set_cookie_header() or "").startswith(f"session={s.id};")


async def test_a_session_only_emptied_keeps_its_id(drv: Driver) -> None:
    sid = await new_session(drv, {"user": "ann"})
    s = await aw(drv.manager().start(sid))
    s.data.clear()
    await aw(s.write_close())
    assert s.id == sid and s.set_cookie_header() is None
    check = await aw(drv.manager().start(sid))
    assert not check.is_new and dict(check) == {}
    await aw(check.abort())


async def test_a_create_id_that_keeps_colliding_raises_id_collision(drv: Driver) -> None:
    """A store whose create_id repeats an id in use: a named error, not an endless loop."""
    taken = await new_session(drv, {"n": 1})
    before = await stored(drv, taken)
    calls = 0

    def create_id(id_bytes: int) -> str:
        nonlocal calls
        calls += 1
        if calls > 50:  # without a bound the save would never end
            raise RuntimeError("save kept asking for ids")
        return taken

    drv.store.create_id = create_id  # type: ignore[method-assign]
    try:
        s = await aw(drv.manager().start())
        s["n"] = 2
        with pytest.raises(IdCollision, match="create_id"):
            await aw(s.write_close())
    finally:
        del drv.store.create_id
    assert calls <= 10
    after = await stored(drv, taken)
    assert after is not None and before is not None and after.payload == before.payload


async def test_a_tampered_tombstone_forwards_nowhere(drv: Driver) -> None:
    """Whoever can write the store cannot point a grace-window tombstone at another session."""
    victim = await new_session(drv, {"user": "victim"})
    sid = await new_session(drv, {"user": "ann"})
    s = await aw(drv.manager().start(sid))
    s.regenerate_id(grace=60)
    await aw(s.write_close())
    tomb = await stored(drv, sid)
    assert tomb is not None
    header, data = unpack(tomb.payload)
    assert header.successor is not None
    # flip the bits that would turn the new id into the victim's under a plain stream cipher
    raw = bytearray(base64.urlsafe_b64decode(header.successor))
    delta = bytes(a ^ b for a, b in zip(s.id.encode(), victim.encode(), strict=True))
    for i, d in enumerate(delta[: len(raw)]):
        raw[i] ^= d
    header.successor = base64.urlsafe_b64encode(bytes(raw)).decode()
    await aw(drv.store.write(storage_key(sid), pack(header, data), tomb.expires_at))
    late = await aw(drv.manager().start(sid))
    assert late.is_new and late.id not in (victim, s.id) and dict(late) == {}
    await aw(late.abort())


async def test_regenerate_kills_the_old_id(drv: Driver) -> None:
    sid = await new_session(drv, {"cart": [1]})
    s = await aw(drv.manager().start(sid))
    s.regenerate_id()
    s["user"] = "ann"
    await aw(s.write_close())
    assert s.id != sid
    assert (s.set_cookie_header() or "").startswith(f"session={s.id};")
    assert await stored(drv, sid) is None
    old = await aw(drv.manager().start(sid))
    assert old.is_new and "cart" not in old
    await aw(old.abort())
    new = await aw(drv.manager().start(s.id))
    assert dict(new) == {"cart": [1], "user": "ann"}
    await aw(new.abort())


async def test_regenerate_grace_window_forwards_in_flight_requests(drv: Driver) -> None:
    sid = await new_session(drv, {"cart": [1]})
    s = await aw(drv.manager().start(sid))
    s.regenerate_id(grace=1.0)
    await aw(s.write_close())
    late = await aw(drv.manager().start(sid))
    assert late.id == s.id and late["cart"] == [1]
    late["seen"] = True
    await aw(late.write_close())
    assert (late.set_cookie_header() or "").startswith(f"session={s.id};")
    await drv.advance(1.3)
    after = await aw(drv.manager().start(sid))
    assert after.is_new and "cart" not in after
    await aw(after.abort())


async def test_fingerprint_mismatch_resets(drv: Driver) -> None:
    m = drv.manager()
    s = await aw(m.start(client=Client(user_agent="Firefox")))
    s["user"] = 1
    await aw(s.write_close())
    thief = await aw(drv.manager().start(s.id, client=Client(user_agent="curl")))
    assert thief.is_bad_hash and "user" not in thief and thief.id != s.id
    await aw(thief.abort())
    assert await stored(drv, s.id) is None  # policy "reset" destroys the old session


async def test_fingerprint_flag_policy_leaves_the_decision_to_the_app(drv: Driver) -> None:
    m = drv.manager(fingerprint_policy="flag")
    s = await aw(m.start(client=Client(user_agent="Firefox")))
    s["user"] = 1
    await aw(s.write_close())
    other = await aw(m.start(s.id, client=Client(user_agent="curl")))
    assert other.is_bad_hash and other["user"] == 1
    await aw(other.abort())


async def test_begin_needs_no_store_until_the_write(drv: Driver) -> None:
    """begin(): a new session for a cookie naming none, synchronous even on an async store."""
    m = drv.manager()
    s = m.begin("not-an-id")  # a malformed cookie: a fresh session, nothing read
    assert s.is_new and dict(s) == {}
    s["a"] = 1
    await aw(s.write_close())
    again = await aw(m.start(s.id))
    assert dict(again) == {"a": 1}
    await aw(again.abort())
    with pytest.raises(ValueError, match="start"):
        m.begin(s.id)  # a well-formed id must be loaded, never replaced


async def test_corrupt_stored_data_gives_a_fresh_session(drv: Driver) -> None:
    sid = await new_session(drv, {"user": 1})
    key = storage_key(sid)
    # the last: a big-int record nested past the stdlib parser's recursion limit
    deep = b'{"v":1,"c":1,"j":true}\n{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for garbage in (b"\xff\xfe garbage", b'{"v":1,"c":1}\n[1,2', b"", b"\n{}", deep):
        await aw(drv.store.write(key, garbage, drv.store.clock() + 60))
        s = await aw(drv.manager().start(sid))
        assert s.is_new and "user" not in s and s.id != sid
        await aw(s.abort())
    again = await aw(drv.manager(lock_wait=0).start(sid))  # no lock was left behind
    assert again.is_new
    await aw(again.abort())


async def test_oversized_session_is_refused_and_nothing_is_written(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    before = await stored(drv, sid)
    s = await aw(drv.manager(max_bytes=1000).start(sid))
    s["blob"] = "x" * 2000
    with pytest.raises(SessionTooLarge):
        await aw(s.write_close())
    assert await stored(drv, sid) == before
    again = await aw(drv.manager(lock_wait=0).start(sid))  # the lock was released
    await aw(again.abort())


async def test_unencodable_values_are_refused_at_write(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    for bad in (float("nan"), {1: "int key"}, object(), b"bytes", (1, 2)):
        s = await aw(drv.manager().start(sid))
        s["bad"] = bad
        with pytest.raises(EncodeError):
            await aw(s.write_close())
    s = await aw(drv.manager(lock_wait=0).start(sid))
    assert dict(s) == {"n": 1}
    await aw(s.abort())


MALFORMED = [
    "",
    "x" * 10_000,
    "A" * 42 + "\x00",
    "A" * 41 + "\r\n",
    "../" * 14 + "a",
    '"' + "A" * 41 + '"',
    "é" * 43,
    "A" * 42 + " ",
    "A" * 44,
]


async def test_malformed_ids_never_reach_the_store(drv: Driver) -> None:
    calls: list[str] = []
    store = drv.store
    for name in ("read", "validate_id", "destroy", "write", "update_timestamp", "release"):
        original = getattr(store, name)

        def spy(*a: Any, _o: Any = original, _n: str = name, **k: Any) -> Any:
            calls.append(_n)
            return _o(*a, **k)

        setattr(store, name, spy)
    try:
        for bad in MALFORMED:
            s = await aw(drv.manager().start(bad))
            assert s.is_new and s.id != bad
            await aw(s.write_close())
    finally:
        for name in ("read", "validate_id", "destroy", "write", "update_timestamp", "release"):
            delattr(store, name)
    assert calls == []


async def test_read_only_start_takes_no_lock_and_writes_nothing(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    before = await stored(drv, sid)
    holder = await aw(drv.manager().start(sid))  # holds the exclusive lock
    ro = await aw(drv.manager(lock_wait=0).start(sid, read_only=True))
    assert ro["n"] == 1 and ro.closed
    with pytest.raises(Exception, match="read-only"):
        ro["n"] = 2
    await aw(holder.abort())
    assert await stored(drv, sid) == before


async def test_write_close_releases_early_and_keeps_data_readable(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    s = await aw(drv.manager().start(sid))
    s["n"] = 2
    await aw(s.write_close())
    assert s["n"] == 2
    other = await aw(drv.manager(lock_wait=0).start(sid))  # no wait: the lock is free
    assert other["n"] == 2
    await aw(other.abort())


async def test_abort_discards_changes_and_releases(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    s = await aw(drv.manager().start(sid))
    s["n"] = 99
    await aw(s.abort())
    other = await aw(drv.manager(lock_wait=0).start(sid))
    assert other["n"] == 1
    await aw(other.abort())


async def test_reset_reloads_the_stored_data(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    s = await aw(drv.manager().start(sid))
    s["n"] = 99
    s["junk"] = True
    await aw(s.reset())
    assert dict(s) == {"n": 1}
    s["n"] = 2
    await aw(s.write_close())
    check = await aw(drv.manager().start(sid))
    assert check["n"] == 2
    await aw(check.abort())


async def test_validate_id_means_exists(drv: Driver) -> None:
    sid = await new_session(drv, {"n": 1})
    assert await aw(drv.store.validate_id(storage_key(sid)))
    assert not await aw(drv.store.validate_id(storage_key("B" * 43)))
