"""The sans-IO engine: every decision driven with an injected clock and no store."""

from __future__ import annotations

import hashlib

import pytest

from coatcheck import (
    Client,
    Config,
    ConfigError,
    SessionConflict,
    SessionManager,
    SessionTooLarge,
    codec,
    ids,
    open_store,
    record,
)
from coatcheck.cookies import CookieAction
from coatcheck.engine import Engine, Nothing, Release, State, Touch, Write
from coatcheck.record import Header
from coatcheck.stores.base import MUST_CREATE, MUST_EXIST, Stored

T0 = 1_700_000_000.0
UA = Client(user_agent="Firefox", ip="203.0.113.9")


def engine(**options: object) -> Engine:
    return Engine(Config(**options))  # type: ignore[arg-type]


def stored_for(
    eng: Engine,
    sid: str,
    data: dict[str, object],
    *,
    created: float = T0,
    expires_at: float | None = None,
    client: Client = UA,
    version: int = 1,
) -> Stored:
    data_bytes, big = codec.encode(data)
    header = Header(created=created, fingerprint=eng.fingerprint(sid, client), big=big)
    deadline = expires_at if expires_at is not None else eng.deadline(header, created)
    return Stored(record.pack(header, data_bytes), deadline, version)


def loaded_state(eng: Engine, data: dict[str, object], now: float = T0 + 10, **kw: object) -> State:
    sid = ids.new_id()
    out = eng.load(sid, stored_for(eng, sid, data, **kw), UA, now, followed=False)  # type: ignore[arg-type]
    assert out.state is not None and out.discard is None
    return out.state


def test_malformed_cookie_values_are_refused_before_any_lookup() -> None:
    eng = engine()
    good = ids.new_id()
    assert eng.parse(good) == good
    for bad in (
        None,
        "",
        "x" * 10_000,
        good[:-1],
        good + "A",
        good[:-1] + "\x00",
        good[:-2] + "\r\n",
        good[:-1] + "é",
        "../" * 14 + "a",
    ):
        assert eng.parse(bad) is None


def test_ids_carry_256_bits_and_are_never_the_storage_key() -> None:
    sid = ids.new_id()
    assert len(sid) == 43 and ids.is_well_formed(sid)
    key = ids.storage_key(sid)
    assert len(key) == 64 and sid not in key
    assert len({ids.new_id() for _ in range(1000)}) == 1000


def test_unknown_id_gives_a_fresh_state_and_discards_nothing() -> None:
    eng = engine()
    out = eng.load(ids.new_id(), None, UA, T0, followed=False)
    assert out.state is not None and out.state.is_new and out.discard is None


def test_idle_expiry_is_decided_from_server_metadata() -> None:
    eng = engine(idle_timeout=100)
    sid = ids.new_id()
    s = stored_for(eng, sid, {"a": 1})
    assert eng.load(sid, s, UA, T0 + 99, followed=False).state.data == {"a": 1}  # type: ignore[union-attr]
    out = eng.load(sid, s, UA, T0 + 100, followed=False)
    assert out.state is not None and out.state.is_expired and out.state.data == {}
    assert out.discard == ids.storage_key(sid) and out.state.id != sid


def test_absolute_expiry_applies_even_with_a_fresh_deadline() -> None:
    eng = engine(idle_timeout=100, absolute_timeout=1000)
    sid = ids.new_id()
    s = stored_for(eng, sid, {"a": 1}, expires_at=T0 + 5000)
    assert eng.load(sid, s, UA, T0 + 999, followed=False).state.data == {"a": 1}  # type: ignore[union-attr]
    assert eng.load(sid, s, UA, T0 + 1000, followed=False).state.is_expired  # type: ignore[union-attr]


def test_deadline_is_capped_by_the_absolute_timeout_and_per_session_overrides() -> None:
    eng = engine(idle_timeout=100, absolute_timeout=1000)
    h = Header(created=T0)
    assert eng.deadline(h, T0 + 10) == T0 + 110
    assert eng.deadline(h, T0 + 950) == T0 + 1000
    h.idle, h.absolute = 5000, 90_000
    assert eng.deadline(h, T0 + 10) == T0 + 5010


def test_fingerprint_mismatch_under_reset_and_flag() -> None:
    sid = ids.new_id()
    for policy, keeps in (("reset", False), ("flag", True)):
        eng = engine(fingerprint_policy=policy)
        s = stored_for(eng, sid, {"user": 1})
        out = eng.load(sid, s, Client(user_agent="curl"), T0 + 1, followed=False)
        assert out.state is not None and out.state.is_bad_hash
        assert (out.state.data == {"user": 1}) is keeps
        assert (out.discard is None) is keeps


def test_fingerprint_ip_prefix_binds_the_network_not_the_host() -> None:
    eng = engine(fingerprint=("user_agent", "ip"))
    sid = ids.new_id()
    a = eng.fingerprint(sid, Client("UA", "203.0.113.9"))
    assert a == eng.fingerprint(sid, Client("UA", "203.0.113.200"))
    assert a != eng.fingerprint(sid, Client("UA", "198.51.100.9"))
    v6 = eng.fingerprint(sid, Client("UA", "2001:db8:1:2::1"))
    assert v6 == eng.fingerprint(sid, Client("UA", "2001:db8:1:2:ffff::9"))
    assert a != eng.fingerprint(ids.new_id(), Client("UA", "203.0.113.9"))  # keyed by the id


def test_a_store_cannot_recompute_a_fingerprint() -> None:
    """The MAC key is the id, not its SHA-256: a store's keys don't unlock its fingerprints."""
    for id_bytes in (32, 64):
        eng = engine(id_bytes=id_bytes)
        sid = ids.new_id(id_bytes)
        fp = eng.fingerprint(sid, Client("Firefox", None))
        assert fp is not None and len(fp) == 64
        known = bytes.fromhex(ids.storage_key(sid))  # all a store ever sees of the id
        for person in (b"fingerprint", b""):
            forged = hashlib.blake2b(b"Firefox", key=known, person=person, digest_size=32)
            assert fp != forged.hexdigest()
        assert fp == eng.fingerprint(sid, Client("Firefox", None))  # stable per id


def test_corrupt_records_are_discarded_not_raised() -> None:
    eng = engine()
    sid = ids.new_id()
    for payload in (
        b"",
        b"junk",
        b'{"v":1,"c":1}\n[1]',
        b'{"v":9,"c":1}\n{}',
        b'{"v":1}\n{}',
        b'{"v":1,"c":1,"i":"x"}\n{}',
        b'{"v":1,"c":1}\n{"a":',
    ):
        out = eng.load(sid, Stored(payload, T0 + 100, 1), UA, T0, followed=False)
        assert out.state is not None and out.state.is_new and out.discard == ids.storage_key(sid)


def test_plan_for_a_new_session() -> None:
    eng = engine()
    st = eng.fresh(T0, UA)
    assert isinstance(eng.plan(st, T0, "exclusive"), Nothing)
    st.data["a"] = 1
    plan = eng.plan(st, T0, "exclusive")
    assert isinstance(plan, Write) and plan.expect == MUST_CREATE
    assert eng.cookie(st, plan, destroyed=False, had_cookie=False, now=T0) == CookieAction(
        st.id, None
    )


def test_plan_lazy_write_touch_and_release() -> None:
    eng = engine(idle_timeout=1000, touch_threshold=60)
    st = loaded_state(eng, {"a": 1})
    st.token = "t"
    assert isinstance(eng.plan(st, T0 + 30, "exclusive"), Release)
    touch = eng.plan(st, T0 + 100, "exclusive")
    assert isinstance(touch, Touch) and touch.expires_at == T0 + 1100
    st.force_touch = True
    assert isinstance(eng.plan(st, T0 + 11, "exclusive"), Touch)
    st.data["a"] = 2
    write = eng.plan(st, T0 + 11, "exclusive")
    assert isinstance(write, Write) and write.expect is None  # the lock fences it
    assert eng.cookie(st, write, destroyed=False, had_cookie=True, now=T0) is None


def test_plan_expectations_per_lock_mode() -> None:
    eng = engine()
    st = loaded_state(eng, {"a": 1}, version=7)
    st.data["a"] = 2
    assert eng.plan(st, T0 + 11, "optimistic").expect == 7  # type: ignore[union-attr]
    assert eng.plan(st, T0 + 11, "none").expect == MUST_EXIST  # type: ignore[union-attr]


def test_lazy_write_off_always_writes() -> None:
    eng = engine(lazy_write=False)
    st = loaded_state(eng, {"a": 1})
    assert isinstance(eng.plan(st, T0 + 11, "none"), Write)


def test_plan_refuses_oversized_payloads() -> None:
    eng = engine(max_bytes=100)
    st = eng.fresh(T0, UA)
    st.data["blob"] = "x" * 200
    with pytest.raises(SessionTooLarge) as info:
        eng.plan(st, T0, "exclusive")
    assert info.value.limit == 100 and info.value.size > 200


def test_merge_applies_my_changes_onto_theirs() -> None:
    eng = engine()
    st = loaded_state(eng, {"keep": 1, "mine": 1, "gone": 1, "theirs": 1})
    st.data["mine"] = 2
    st.data["added"] = True
    del st.data["gone"]
    theirs = stored_for(eng, st.id, {"keep": 1, "mine": 1, "gone": 1, "theirs": 2}, version=2)
    assert eng.merge(st, theirs) == {"keep": 1, "mine": 2, "theirs": 2, "added": True}


def test_merge_conflicts_by_resolution() -> None:
    for resolution, expected in (("mine", "m"), ("theirs", "t")):
        eng = engine(conflict_resolution=resolution)
        st = loaded_state(eng, {"k": "base"})
        st.data["k"] = "m"
        assert eng.merge(st, stored_for(eng, st.id, {"k": "t"}))["k"] == expected
    eng = engine()
    st = loaded_state(eng, {"k": "base", "same": 0})
    st.data["k"] = "m"
    st.data["same"] = 1
    with pytest.raises(SessionConflict) as info:
        eng.merge(st, stored_for(eng, st.id, {"k": "t", "same": 1, "other": 0}))
    # both set "same" from 0 to 1: two increments, not one agreement; "other" is theirs alone
    assert info.value.keys == ["k", "same"]


def test_merge_over_a_corrupt_record_keeps_this_requests_data() -> None:
    eng = engine()
    st = loaded_state(eng, {"n": 0})
    st.data["mine"] = 1
    corrupt = Stored(b"\x00not a record", T0 + 100, 7)
    assert eng.merge(st, corrupt) == {"n": 0, "mine": 1}  # no ValueError reaches the app


def test_merge_takes_theirs_as_the_new_base() -> None:
    """A second lost race compares against what the first merge saw, not the first read."""
    eng = engine()
    st = loaded_state(eng, {"n": 0})
    st.data["mine"] = 1
    first = stored_for(eng, st.id, {"n": 0, "a": 1})
    st.data.update(eng.merge(st, first))
    # another writer adds "b"; "a" (which this request only carried over) is no conflict
    assert eng.merge(st, stored_for(eng, st.id, {"n": 0, "a": 1, "b": 2})) == {
        "n": 0,
        "a": 1,
        "b": 2,
        "mine": 1,
    }


def test_regenerate_with_grace_leaves_a_forwarding_tombstone() -> None:
    eng = engine()
    st = loaded_state(eng, {"cart": [1]})
    old_id = st.id
    new = eng.regenerate(st, T0 + 20, UA, delete_old=True, grace=30)
    assert new.id != old_id and new.data == {"cart": [1]} and not new.cookie_id_sent
    (retired,) = new.retired
    assert retired.key == ids.storage_key(old_id) and retired.tombstone is not None
    assert new.id.encode() not in retired.tombstone  # the raw new id is never stored
    tomb = Stored(retired.tombstone, retired.until, 2)
    out = eng.load(old_id, tomb, UA, T0 + 40, followed=False)
    assert out.follow == new.id and out.state is None
    late = eng.load(old_id, tomb, UA, T0 + 51, followed=False)
    assert late.state is not None and late.state.is_new and late.follow is None


def test_regenerate_without_grace_destroys_the_old_record() -> None:
    eng = engine()
    st = loaded_state(eng, {"a": 1})
    new = eng.regenerate(st, T0 + 20, UA, delete_old=True, grace=None)
    (retired,) = new.retired
    assert retired.tombstone is None and retired.until >= 0


def test_destroy_cookie_and_persistent_cookie_refresh() -> None:
    eng = engine(cookie_lifetime=3600, idle_timeout=7200)
    st = loaded_state(eng, {"a": 1})
    assert eng.cookie(st, Nothing(), destroyed=True, had_cookie=True, now=T0) == CookieAction(
        None, 0
    )
    assert eng.cookie(st, Nothing(), destroyed=True, had_cookie=False, now=T0) is None
    assert eng.cookie(st, Touch(T0), destroyed=False, had_cookie=True, now=T0) == CookieAction(
        st.id, 3600
    )
    assert eng.cookie(st, Release(), destroyed=False, had_cookie=True, now=T0) is None


def test_gc_probability() -> None:
    assert not any(engine(gc_probability=0).gc_due() for _ in range(200))
    assert all(engine(gc_probability=5, gc_divisor=5).gc_due() for _ in range(200))
    hits = sum(engine(gc_probability=1, gc_divisor=2).gc_due() for _ in range(2000))
    assert 700 < hits < 1300


def test_new_ids_come_from_the_stores_create_id_and_are_checked() -> None:
    made: list[str] = []

    def create_id(id_bytes: int) -> str:
        made.append(ids.new_id(id_bytes))
        return made[-1]

    eng = Engine(Config(), create_id)
    state = eng.fresh(T0, UA)
    assert made == [state.id] and ids.is_well_formed(state.id)
    weak = Engine(Config(), lambda n: "0" * 10)  # too short: strict mode would refuse it
    with pytest.raises(ConfigError, match="create_id"):
        weak.fresh(T0, UA)


def test_no_gc_draw_for_a_store_that_expires_records_itself() -> None:
    collecting = Engine(Config(gc_probability=5, gc_divisor=5), collects=False)
    assert not any(collecting.gc_due() for _ in range(200))
    # A manager asks its store: Redis and Memcached drop expired keys themselves.
    memory = open_store("memory://")
    assert not memory.expires_itself
    assert SessionManager(memory, Config(gc_probability=5, gc_divisor=5)).engine.gc_due()
    memory.expires_itself = True
    assert not SessionManager(memory, Config(gc_probability=5, gc_divisor=5)).engine.gc_due()


def test_the_cookie_expires_on_the_injected_clock() -> None:
    manager = SessionManager(open_store("memory://"), Config(cookie_lifetime=60), clock=lambda: 0.0)
    s = manager.start()
    s["n"] = 1
    s.write_close()
    header = s.set_cookie_header() or ""
    assert "Max-Age=60" in header and "Expires=Thu, 01 Jan 1970 00:01:00 GMT" in header


def test_a_restarted_session_that_is_written_sends_its_own_cookie() -> None:
    """destroy(restart=True) then new data: the new session's cookie, not a deletion."""
    eng = engine()
    st = eng.fresh(T0, UA)
    st.data["user"] = "bob"
    plan = eng.plan(st, T0, "exclusive")
    assert isinstance(plan, Write)
    cookie = eng.cookie(st, plan, destroyed=True, had_cookie=True, now=T0)
    assert cookie == CookieAction(st.id, None)


def test_max_age_never_outlives_the_absolute_deadline() -> None:
    eng = engine(absolute_timeout=12 * 3600)
    st = eng.fresh(T0, UA)
    st.header.idle = 30 * 86400.0
    assert eng.max_age(st, T0) == 12 * 3600
    assert eng.max_age(st, T0 + 11 * 3600) == 3600
    st.header.idle = 60.0
    assert eng.max_age(st, T0 + 11 * 3600) == 60
    lifetime = engine(cookie_lifetime=30 * 86400, idle_timeout=600)
    assert lifetime.max_age(lifetime.fresh(T0, UA), T0) == 600
