"""The session lifecycle as a state machine: random request sequences against a model.

One browser and any number of other clients send requests, one at a time, to a
SessionManager over the memory store with an injected clock. A request starts from a
cookie (the browser's, any id ever issued, a near miss of one, a stranger's, garbage or
none), changes the data, regenerates the id, remembers, touches, resets or destroys, and
ends with write_close or abort; between requests the clock moves. The model says what
every stored session holds and when it dies, and is checked against the store and the
Session API after every step.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from coatcheck import (
    Client,
    Config,
    Session,
    SessionClosed,
    SessionManager,
    codec,
    ids,
    open_store,
    record,
)
from coatcheck.cookies import CookieAction, session_cookie

from .strategies import examples, same

IDLE, ABSOLUTE, THRESHOLD = 100.0, 400.0, 25.0
AGENTS = ("agent-1", "agent-2")
START = 1_000_000.0

keys = st.sampled_from(["a", "b", "user", "cart"])
values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text("ab", max_size=2),
    lambda children: st.lists(children, max_size=2),
    max_leaves=3,
)
# between requests: small steps, the touch threshold, the idle timeout and the absolute cap,
# just below, at and just past each
sources = st.sampled_from(
    ["jar"] * 3 + ["stale"] * 2 + ["issued", "near_miss", "stranger", "none", "junk"]
)
agents = st.sampled_from(AGENTS[:1] * 4 + AGENTS[1:])
read_only = st.sampled_from([False] * 4 + [True])
operations = st.one_of(
    st.tuples(st.just("set_key"), keys, values),
    st.tuples(st.just("set_key"), keys, values),
    st.tuples(st.just("delete_key"), keys),
    st.tuples(st.just("clear")),
    st.tuples(st.just("regenerate"), st.booleans(), st.sampled_from([None, 0, 30])),
    st.tuples(st.just("remember"), st.sampled_from([50.0, 300.0]), st.sampled_from([None, 200.0])),
    st.tuples(st.just("touch")),
    st.tuples(st.just("reset")),
    st.tuples(st.just("destroy"), st.just(True)),
)
endings = st.sampled_from(["write_close"] * 4 + ["abort", "destroy"])
steps = st.one_of(
    st.sampled_from([1, 5, 24, 25, 26]),
    st.sampled_from([1, 10, 30, 50]),
    st.sampled_from([74, 75, 76, 99, 100, 101, 250, 399, 400, 401]),
)


@dataclass
class Record:
    """What the store must hold under one id's key."""

    data: dict[str, Any]
    created: float
    expires_at: float
    agent: str | None  # the user agent the fingerprint binds; None for a tombstone
    idle: float | None = None
    absolute: float | None = None
    successor: str | None = None  # a tombstone: forwards to this id until expires_at


@dataclass
class Request:
    """The model of one open request's session."""

    session: Session
    id: str
    agent: str  # the client's user agent
    bound_agent: str | None  # the agent in the session's header (a flagged mismatch keeps it)
    cookie: str | None  # the cookie value the request came with
    from_jar: bool  # the browser's request: its Set-Cookie updates the jar
    stored: bool = False  # the id's record was loaded (a write replaces, not creates)
    snapshot: dict[str, Any] | None = None
    loaded_expires_at: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    idle: float | None = None
    absolute: float | None = None
    header_dirty: bool = False
    force_touch: bool = False
    emptied: bool = False
    # ids given up by regenerate_id: (old id, grace); grace 0 destroys the old record at
    # write_close, -1 keeps it (delete_old=False), > 0 leaves a tombstone
    retired: list[tuple[str, float]] = field(default_factory=list)
    destroyed: bool = False
    followed: bool = False  # reached through a tombstone: the client holds the old id


@dataclass
class Expected:
    """What a start (or a reset) must find."""

    id: str | None  # None: a fresh session
    discard: list[str] = field(default_factory=list)
    expired: bool = False
    bad_hash: bool = False
    followed: bool = False


Plan = Literal["nothing", "write", "touch"]


class SessionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.records: dict[str, Record] = {}
        self.issued: list[str] = []
        self.jar: str | None = None  # the browser's session cookie
        self.stale: list[str] = []  # cookies it held before: what an older tab still sends
        self.req: Request | None = None

    @initialize(
        mode=st.sampled_from(["exclusive", "optimistic", "none"]),
        lazy=st.booleans(),
        policy=st.sampled_from(["reset", "flag"]),
        grace=st.sampled_from([0, 30]),
        lifetime=st.sampled_from([0, 500]),
    )
    def open_manager(self, mode: str, lazy: bool, policy: str, grace: int, lifetime: int) -> None:
        self.config = Config(
            idle_timeout=IDLE,
            absolute_timeout=ABSOLUTE,
            touch_threshold=THRESHOLD,
            lock_mode=mode,  # type: ignore[arg-type]
            lazy_write=lazy,
            fingerprint_policy=policy,  # type: ignore[arg-type]
            regenerate_grace=grace,
            cookie_lifetime=lifetime,
            gc_probability=1,
            gc_divisor=3,
        )
        self.store = open_store("memory://")
        self.manager = SessionManager(
            self.store, self.config, clock=lambda: self.now, rng=random.Random(0)
        )

    # --- the model's rules --------------------------------------------------------------

    def _live(self, sid: str) -> bool:
        r = self.records.get(sid)
        return (
            r is not None
            and r.successor is None
            and r.expires_at > self.now
            and self.now - r.created < (r.absolute or ABSOLUTE)
        )

    def _expect(self, sid: str | None, agent: str, followed: bool = False) -> Expected:
        r = self.records.get(sid) if sid is not None else None
        if sid is None or r is None:
            return Expected(None)
        if r.successor is not None:
            if r.expires_at > self.now and not followed:  # within the grace window
                got = self._expect(r.successor, agent, followed=True)
                got.followed = got.id is not None
                return got
            return Expected(None, discard=[sid])
        if not self._live(sid):
            return Expected(None, discard=[sid], expired=True)
        if r.agent != agent:
            if self.config.fingerprint_policy == "reset":
                return Expected(None, discard=[sid], bad_hash=True)
            return Expected(sid, bad_hash=True)
        return Expected(sid)

    def _deadline(self, req: Request) -> float:
        return min(self.now + (req.idle or IDLE), req.created + (req.absolute or ABSOLUTE))

    def _issue(self, sid: str) -> None:
        assert ids.is_well_formed(sid)
        assert sid not in self.issued, "an id was issued twice"
        self.issued.append(sid)

    def _load_into(self, req: Request, sid: str) -> None:
        r = self.records[sid]
        req.id, req.stored = sid, True
        req.data, req.snapshot = copy.deepcopy(r.data), copy.deepcopy(r.data)
        req.loaded_expires_at, req.created = r.expires_at, r.created
        req.idle, req.absolute, req.bound_agent = r.idle, r.absolute, r.agent
        req.header_dirty = req.force_touch = req.emptied = False
        req.retired = []

    def _fresh(self, req: Request, sid: str) -> None:
        self._issue(sid)
        req.id, req.stored, req.snapshot, req.data = sid, False, None, {}
        req.created, req.idle, req.absolute = self.now, None, None
        req.bound_agent = req.agent
        req.header_dirty = req.force_touch = req.emptied = False
        req.retired = []

    def _forget_collected(self) -> None:
        """GC may have run in a start: it may only have removed what had expired."""
        for sid, r in list(self.records.items()):
            if self.store.read(ids.storage_key(sid)) is None:
                assert r.expires_at <= self.now, "a live session vanished from the store"
                del self.records[sid]

    # --- requests -----------------------------------------------------------------------

    @precondition(lambda self: self.req is None)
    @rule(source=sources, pick=st.integers(0, 10**6), agent=agents, read_only=read_only)
    def start(self, source: str, pick: int, agent: str, read_only: bool) -> None:
        cookie: str | None = None
        if source == "jar" and self.jar is not None:
            header = f"theme=dark; {self.config.cookie_name}={self.jar}; lang=en"
            cookie = session_cookie(header, self.config.cookie_name)
        elif source == "stale" and self.stale:
            cookie = self.stale[-1 - pick % len(self.stale)]
        elif source in ("issued", "near_miss") and self.issued:
            cookie = self.issued[pick % len(self.issued)]
            if source == "near_miss":  # one character off: another id, never the same session
                cookie = cookie[:-1] + ("B" if cookie[-1] == "A" else "A")
        elif source == "stranger":
            cookie = ids.new_id()
        elif source == "junk":
            cookie = ["", "x", "A" * 42, "A" * 44, "A" * 42 + "=", "../../etc/passwd"][pick % 6]
        self._start(cookie, agent, read_only, from_jar=source == "jar")

    def _start(self, cookie: str | None, agent: str, read_only: bool, from_jar: bool) -> None:
        sid = cookie if ids.is_well_formed(cookie) else None
        want = self._expect(sid, agent)
        event(
            "start: "
            + ("fresh" if want.id is None else "followed" if want.followed else "loaded")
            + (" (expired)" if want.expired else "")
            + (" (bad hash)" if want.bad_hash else "")
        )
        s = self.manager.start(cookie, client=Client(user_agent=agent), read_only=read_only)
        assert s.is_new is (want.id is None)
        assert s.is_expired is want.expired
        assert s.is_bad_hash is want.bad_hash
        for gone in want.discard:
            del self.records[gone]
        req = Request(s, "", agent, None, cookie, from_jar, followed=want.followed)
        if want.id is None:
            self._fresh(req, s.id)
            assert s.id != cookie and dict(s) == {}
        else:
            assert s.id == want.id
            self._load_into(req, want.id)
            assert same(dict(s), req.data), "a stored session read back differently"
        self.req = req
        self._forget_collected()
        if read_only:
            assert s.closed
            with pytest.raises(SessionClosed):
                s["a"] = 1
            self._finish("nothing")

    def _request(self) -> Request:
        """The open request; with none open, the browser sends one (so that every rule can
        run in every state, instead of being drawn and thrown away)."""
        if self.req is None:
            self._start(self.jar, AGENTS[0], read_only=False, from_jar=True)
        assert self.req is not None
        return self.req

    @rule(key=keys, value=values)
    def set_key(self, key: str, value: Any) -> None:
        req = self._request()
        req.session[key] = value
        req.data[key] = copy.deepcopy(value)

    @rule(key=keys)
    def delete_key(self, key: str) -> None:
        req = self._request()
        if key not in req.data:
            with pytest.raises(KeyError):
                del req.session[key]
            return
        del req.session[key]
        del req.data[key]
        req.emptied |= not req.data

    @rule()
    def clear(self) -> None:
        req = self._request()
        req.session.clear()
        req.emptied |= bool(req.data)
        req.data.clear()

    @rule(delete_old=st.booleans(), grace=st.sampled_from([None, 0, 30]))
    def regenerate(self, delete_old: bool, grace: int | None) -> None:
        req = self._request()
        old = req.id
        req.session.regenerate_id(delete_old=delete_old, grace=grace)
        assert req.session.id != old
        wait = self.config.regenerate_grace if grace is None else grace
        if req.stored and wait > 0:
            req.retired.append((old, wait))
        elif req.stored:
            req.retired.append((old, 0 if delete_old else -1))
        self._issue(req.session.id)
        req.id, req.stored, req.snapshot = req.session.id, False, None
        req.bound_agent = req.agent
        req.header_dirty = req.force_touch = req.emptied = False
        assert same(dict(req.session), req.data)

    @rule(idle=st.sampled_from([50.0, 300.0, 1000.0]), absolute=st.sampled_from([None, 200.0]))
    def remember(self, idle: float, absolute: float | None) -> None:
        req = self._request()
        req.session.remember(idle, absolute)
        req.idle, req.absolute, req.header_dirty = idle, absolute, True
        assert req.session.remembered

    @rule()
    def touch(self) -> None:
        req = self._request()
        req.session.touch()
        req.force_touch = True

    @rule()
    def reset(self) -> None:
        req = self._request()
        req.session.reset()
        req.emptied, req.retired = False, []  # regenerate_id undone: old ids stay as stored
        if req.stored:
            assert self._live(req.id)
            self._load_into(req, req.id)
        else:
            req.data = {}
        assert same(dict(req.session), req.data)

    @rule(restart=st.booleans())
    def destroy(self, restart: bool) -> None:
        req = self._request()
        req.session.destroy(restart=restart)
        if req.stored:
            del self.records[req.id]
        for old, grace in req.retired:  # ids kept by regenerate_id(delete_old=False) stay
            if grace >= 0:
                del self.records[old]
        req.destroyed = True
        self._fresh(req, req.session.id)
        assert dict(req.session) == {}
        if not restart:
            self._finish("nothing")

    @rule()
    def abort(self) -> None:
        self._request().session.abort()
        self._finish("nothing")

    @rule()
    def write_close(self) -> None:
        req = self._request()
        s = req.session
        old_id = req.id
        s.write_close()
        renewed = req.emptied and bool(req.data) and req.stored
        if renewed:  # emptied, then filled again (a logout, then a login): a new id
            assert s.id != old_id
            req.retired.append((old_id, 0))
            self._issue(s.id)
            req.id, req.stored, req.snapshot = s.id, False, None
            req.bound_agent = req.agent
        else:
            assert s.id == old_id
        plan = self._plan(req)
        event(f"write_close: {plan}" + (" (renewed id)" if renewed else ""))
        for old, grace in req.retired:
            if grace > 0:
                self.records[old] = Record(
                    {}, req.created, self.now + grace, None, successor=req.id
                )
            elif grace == 0:
                del self.records[old]
        assert same(dict(s), req.data)  # still readable after the write
        with pytest.raises(SessionClosed):
            s["a"] = 1
        self._finish(plan)

    def _plan(self, req: Request) -> Plan:
        """Lazy write: what the save must have done to the record under req.id."""
        if not req.stored and not req.data and not req.header_dirty:
            return "nothing"  # an untouched new session is stored nowhere
        deadline = self._deadline(req)
        changed = not same(req.data, req.snapshot) or req.header_dirty
        if not req.stored or changed or not self.config.lazy_write:
            self.records[req.id] = Record(
                copy.deepcopy(req.data),
                req.created,
                deadline,
                req.bound_agent,
                req.idle,
                req.absolute,
            )
            return "write"
        if req.force_touch or deadline - req.loaded_expires_at >= THRESHOLD:
            r = self.records[req.id]
            r.expires_at = max(r.expires_at, deadline)
            return "touch"
        return "nothing"

    def _finish(self, plan: Plan) -> None:
        """The response: what the Set-Cookie tells the browser about the session."""
        req = self.req
        assert req is not None
        s = req.session
        assert s.closed
        action = s.cookie()
        header = s.set_cookie_header()
        assert (action is None) is (header is None)
        live = self._live(s.id)
        if action is not None:
            assert header is not None
            value = session_cookie(header.split(";")[0], self.config.cookie_name)
            assert value == (action.value or "")
            if action.value is not None and action.max_age != 0:
                # never point a browser at a session that does not exist
                assert action.value == s.id and live
                # a followed request moves the browser on even when it changed nothing
                assert plan != "nothing" or req.followed
                self._check_max_age(action, self.records[s.id])
            elif action.value is None:
                assert req.cookie is not None, "a cookie deleted that was never sent"
        if live and req.cookie != s.id:
            # the client ends up holding the live session it was given
            assert action is not None and action.value == s.id
        if req.destroyed and not live and req.cookie is not None:
            assert action is not None and action.value is None, "a logout kept its cookie"
        if req.from_jar and action is not None:
            if self.jar is not None:
                self.stale.append(self.jar)
            self.jar = action.value if action.max_age != 0 else None
        self.req = None

    def _check_max_age(self, action: CookieAction, r: Record) -> None:
        persistent = r.idle is not None or self.config.cookie_lifetime > 0
        assert (action.max_age is not None) is persistent
        if action.max_age is not None:
            assert 0 < action.max_age <= r.expires_at - self.now

    @precondition(lambda self: self.req is None)
    @rule(
        source=sources,
        pick=st.integers(0, 10**6),
        agent=agents,
        ops=st.lists(operations, max_size=6),
        ending=endings,
    )
    def request(
        self, source: str, pick: int, agent: str, ops: list[tuple[Any, ...]], ending: str
    ) -> None:
        """A whole request in one step: the single-call rules above interleave freely, but
        reaching a loaded, regenerated or followed session takes many of them in a row."""
        self.start(source, pick, agent, read_only=False)
        for name, *args in ops:
            getattr(self, name)(*args)
        if ending == "destroy":
            self.destroy(False)
        else:
            getattr(self, ending)()

    @precondition(lambda self: self.req is None)
    @rule(seconds=steps)
    def advance_clock(self, seconds: int) -> None:
        self.now += seconds

    @precondition(lambda self: self.req is None and bool(self.records))
    @rule(
        pick=st.integers(0, 3),
        deadline=st.sampled_from(["idle", "absolute"]),
        offset=st.sampled_from([-1, 0, 1]),
    )
    def advance_to_a_deadline(self, pick: int, deadline: str, offset: int) -> None:
        """To a second either side of, or exactly at, a stored session's idle deadline
        (a tombstone's grace window) or absolute cap, which summed steps rarely hit."""
        held = [self.jar] if self.jar in self.records else []  # the browser's first
        candidates = held + sorted(self.records)
        r = self.records[candidates[pick % len(candidates)]]
        target = r.expires_at if deadline == "idle" else r.created + (r.absolute or ABSOLUTE)
        self.now = max(self.now, target + offset)

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def store_holds_what_the_model_says(self) -> None:
        if not hasattr(self, "store"):
            return
        metas = list(self.store.scan())
        live_keys = {m.key for m in metas}
        modelled = {ids.storage_key(sid): sid for sid in self.records}
        assert live_keys == {
            k for k, sid in modelled.items() if self.records[sid].expires_at > self.now
        }
        raw = [sid.encode() for sid in self.issued]
        for m in metas:
            assert ids.check_storage_key(m.key) == m.key
            if self.req is None:
                assert not m.locked, "a lock outlived its request"
        for key, sid in modelled.items():
            r = self.records[sid]
            stored = self.store.read(key)
            if stored is None:
                assert r.expires_at <= self.now  # collected
                continue
            assert stored.expires_at == r.expires_at
            assert not any(i in stored.payload for i in raw), "a raw id in a stored payload"
            header, body = record.unpack(stored.payload)
            assert header.created == r.created
            if r.successor is not None:
                assert ids.open_successor(sid, header.successor or "") == r.successor
                continue
            assert header.successor is None
            assert (header.idle, header.absolute) == (r.idle, r.absolute)
            assert same(codec.decode(body, header.big), r.data)

    @invariant()
    def ids_are_never_store_keys(self) -> None:
        if hasattr(self, "store"):
            keys_ = {m.key for m in self.store.scan()}
            assert not keys_ & set(self.issued)


SessionMachine.TestCase.settings = settings(examples(400), stateful_step_count=40)
TestSessionMachine = SessionMachine.TestCase


# --- bugs the machine found (fixed since), kept as examples ------------------------------


def _manager(**options: Any) -> tuple[SessionManager, Any]:
    store = open_store("memory://")
    return SessionManager(store, Config(**options), clock=lambda: START), store


def _stored_session(manager: SessionManager) -> str:
    s = manager.start(None)
    s["user"] = 7
    s.write_close()
    return s.id


def test_a_second_regenerate_keeps_the_grace_window() -> None:
    manager, _ = _manager()
    old = _stored_session(manager)
    s = manager.start(old)
    s.regenerate_id(grace=60)
    s.regenerate_id()
    s.write_close()
    late = manager.start(old)  # a request sent before the browser saw the new cookie
    assert (late.id, dict(late)) == (s.id, {"user": 7})


@pytest.mark.parametrize("delete_old", [True, False])
def test_reset_after_regenerate_releases_the_old_lock(delete_old: bool) -> None:
    manager, store = _manager(lock_mode="exclusive")
    old = _stored_session(manager)
    s = manager.start(old)
    s.regenerate_id(delete_old=delete_old)
    s.reset()
    s.abort()
    assert not any(meta.locked for meta in store.scan())


def test_destroy_keeps_an_id_regenerate_kept() -> None:
    manager, _ = _manager(lock_mode="exclusive")
    old = _stored_session(manager)
    s = manager.start(old)
    s.regenerate_id(delete_old=False)
    s.destroy()
    kept = manager.start(old)
    assert dict(kept) == {"user": 7}


@pytest.mark.parametrize("then", ["nothing", "reset_and_write"])
def test_a_followed_session_sends_its_new_cookie(then: str) -> None:
    manager, _ = _manager()
    old = _stored_session(manager)
    s = manager.start(old)
    s.regenerate_id(grace=60)
    s.write_close()
    late = manager.start(old)
    assert late.id == s.id
    if then == "reset_and_write":
        late.reset()
        late["cart"] = 1
    late.write_close()
    action = late.cookie()
    assert action is not None and action.value == s.id


@pytest.mark.parametrize("idle", [math.inf, math.nan])
def test_remember_refuses_a_timeout_no_cookie_can_carry(idle: float) -> None:
    manager, _ = _manager()
    s = manager.start(None)
    s["user"] = 7
    try:
        s.remember(idle)
    except ValueError:
        return
    s.write_close()
    s.set_cookie_header()
