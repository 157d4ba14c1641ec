"""Session, SessionManager and the memory store as a state machine against a plain model.

Each rule is one request: start (no cookie, a stored id, any id ever issued, a tombstoned
id, garbage; one of two user agents), a few of set / delete / clear / regenerate (with and
without a grace window) / time passing, then write_close, destroy or abort. Other rules
move the clock (within the touch threshold, past it, exactly onto the idle timeout, past
it, past the absolute timeout) and run gc. After every step the store must hold exactly
the model's records and tombstones under hashed keys, live sessions read back exactly, and
ids that were destroyed, regenerated away or never written load as fresh sessions.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from coatcheck import Config, codec, ids, record
from coatcheck.cookies import session_cookie
from coatcheck.engine import Client
from coatcheck.session import Session, SessionManager
from coatcheck.stores.memory import MemoryStore

IDLE = 100.0
ABSOLUTE = 250.0  # short, so that sessions kept alive by requests still reach it
TOUCH = 25.0  # Config's default touch_threshold for this idle_timeout: min(60, IDLE / 4)
LEASE = 30.0
CLIENTS = {"a": Client(user_agent="browser A"), "b": Client(user_agent="browser B")}

keys = st.sampled_from(["k", "cart", "user", "é🧥", ""])
_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=8)
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.integers(-(10**30), 10**30),  # past 64 bits: the stdlib-json encoder
        st.floats(allow_nan=False, allow_infinity=False),
        _text,
    ),
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(_text, c, max_size=3)),
    max_leaves=6,
)


class CountingMemoryStore(MemoryStore):
    """The memory store with reproducible ids (hypothesis replays need them): still
    ``id_bytes`` bytes of hash output per id, from a counter instead of :mod:`secrets`."""

    def __init__(self) -> None:
        super().__init__()
        self.minted = 0

    def create_id(self, id_bytes: int) -> str:
        self.minted += 1
        raw = hashlib.shake_256(b"coatcheck-fuzz-%d" % self.minted).digest(id_bytes)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def text_of(data: dict[str, Any]) -> str:
    """Key order and exact types (1, 1.0, True and -0.0 apart), independently of the codec."""
    return json.dumps(data, ensure_ascii=False)


@dataclass
class Rec:
    """A record (live or expired) the model expects in the store."""

    data: dict[str, Any]
    created: float
    expires_at: float
    ua: str


@dataclass
class Tomb:
    successor: str
    until: float


@dataclass
class Open:
    """The request in progress."""

    session: Session
    presented: str | None  # the cookie value sent
    ua: str
    work: dict[str, Any]  # what the app has put in it
    snapshot: str | None  # text_of the data as loaded; None: not in the store yet
    stored: bool  # the session's current id has a record (version > 0)
    created: float
    expires_at: float
    opened_at: float
    retired: list[tuple[str, float | None]] = field(default_factory=list)
    regenerated_with_grace: bool = False
    # every key was removed in this request (a logout): data written after it is saved
    # under a new id and the old record is deleted (SessionData.emptied)
    emptied: bool = False


STEP_METHODS = {"set": "set_key", "del": "delete_key", "tick": "request_takes_time"}
request_steps = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("set"), keys, st.none()),  # often the value already there
        st.tuples(st.just("del"), st.integers(0, 9)),
        st.tuples(st.just("clear"), st.booleans()),
        st.tuples(st.just("regenerate"), st.sampled_from([None, 0.0, 5.0, 60.0])),
        st.tuples(st.just("tick"), st.floats(0, 5)),
    ),
    max_size=6,
)


class SessionModel(RuleBasedStateMachine):
    lock_mode = "exclusive"

    def __init__(self) -> None:
        super().__init__()
        self.now = 1_700_000_000.0
        self.store = CountingMemoryStore()
        self.config = Config(
            idle_timeout=IDLE,
            absolute_timeout=ABSOLUTE,
            lock_lease=LEASE,
            gc_probability=0,  # gc only when a rule says so: the model knows when
            lock_mode=self.lock_mode,  # type: ignore[arg-type]
        )
        assert self.config.touch_threshold == TOUCH
        self.manager = SessionManager(self.store, self.config, clock=lambda: self.now)
        self.records: dict[str, Rec] = {}
        self.tombs: dict[str, Tomb] = {}
        self.issued: set[str] = set()  # every raw id the machine has seen
        self.cur: Open | None = None

    # --- the model ----------------------------------------------------------------------

    def alive(self, rec: Rec) -> bool:
        return rec.expires_at > self.now and self.now - rec.created < ABSOLUTE

    def deadline(self, created: float) -> float:
        return min(self.now + IDLE, created + ABSOLUTE)

    def load_outcome(self, sid: str | None, ua: str) -> tuple[str | None, str]:
        """Which id a start with cookie ``sid`` lands on (None: a fresh one) and why,
        updating the model for the records that start discards."""
        if sid is None or not ids.is_well_formed(sid):
            return None, "fresh"
        followed = False
        while True:
            if sid in self.tombs:
                if self.tombs[sid].until > self.now and not followed:
                    sid, followed = self.tombs[sid].successor, True
                    continue
                del self.tombs[sid]  # past its window, or a tombstone reached by following
                return None, "fresh"
            rec = self.records.get(sid)
            if rec is None:
                return None, "fresh"
            if not self.alive(rec):
                del self.records[sid]
                return None, "expired"
            if rec.ua != ua:  # fingerprint_policy "reset": the record is destroyed
                del self.records[sid]
                return None, "bad_hash"
            return sid, "followed" if followed else "loaded"

    # --- rules --------------------------------------------------------------------------

    @initialize(
        contents=st.lists(st.dictionaries(keys, values, min_size=1, max_size=3), max_size=3)
    )
    def some_sessions(self, contents: list[dict[str, Any]]) -> None:
        """A few stored sessions to begin with, so that short runs load, touch and expire."""
        assert self.store.count() == 0
        for data in contents:
            self.start(None, "none", "a")  # type: ignore[arg-type]
            for k, v in data.items():
                self.set_key(k, v)
            self.write_close()

    @rule(
        data=st.data(),
        kind=st.sampled_from(["none", "record", "record", "issued", "tomb", "garbage"]),
        ua=st.sampled_from(["a", "a", "a", "b"]),
        steps=request_steps,
        then=st.sampled_from([0.0, 0.0, 1.0, TOUCH, TOUCH + 10, IDLE - 1]),
        end=st.sampled_from(["write_close", "write_close", "write_close", "destroy", "abort"]),
    )
    def request(
        self,
        data: st.DataObject,
        kind: str,
        ua: str,
        steps: list[tuple[Any, ...]],
        end: str,
        then: float,
    ) -> None:
        """One request: start, a few changes, then write_close, destroy or abort."""
        self.start(data, kind, ua)
        for name, *args in steps:
            cur = self.cur
            assert cur is not None
            if name == "del":
                if not cur.work:
                    continue
                args = [sorted(cur.work)[args[0] % len(cur.work)]]
            elif name == "regenerate" and cur.regenerated_with_grace:
                continue  # see test_double_regenerate_with_grace_forwards_to_the_final_id
            elif name == "tick" and self.now - cur.opened_at >= LEASE - 6:
                continue  # stay well within the lock lease
            getattr(self, STEP_METHODS.get(name, name))(*args)
            self.store_holds_exactly_the_model()
        getattr(self, end)()
        self.now += then  # the gap to the next request

    def start(self, data: st.DataObject, kind: str, ua: str) -> None:
        presented: str | None
        if kind == "record" and self.records:
            presented = data.draw(st.sampled_from(sorted(self.records)))
        elif kind == "tomb" and self.tombs:
            presented = data.draw(st.sampled_from(sorted(self.tombs)))
        elif kind == "issued" and self.issued:
            presented = data.draw(st.sampled_from(sorted(self.issued)))
        elif kind == "none":
            presented = None
        else:
            presented = data.draw(
                st.one_of(st.text(max_size=50), st.just("A" * 43), st.just("../" + "A" * 40))
            )
        target, reason = self.load_outcome(presented, ua)
        event(f"start: {reason}")
        s = self.manager.start(presented, client=CLIENTS[ua])
        if target is None:
            assert s.is_new and dict(s) == {}
            assert s.id != presented and s.id not in self.issued and ids.is_well_formed(s.id)
            assert s.is_expired is (reason == "expired")
            assert s.is_bad_hash is (reason == "bad_hash")
            self.cur = Open(s, presented, ua, {}, None, False, self.now, 0.0, self.now)
        else:
            rec = self.records[target]
            assert not s.is_new and not s.is_expired and not s.is_bad_hash
            assert s.id == target
            assert text_of(dict(s)) == text_of(rec.data), "loaded data differs from the model"
            snap = text_of(rec.data)
            self.cur = Open(
                s, presented, ua, json.loads(snap), snap, True, rec.created, rec.expires_at,
                self.now,
            )  # fmt: skip
        self.issued.add(s.id)

    def set_key(self, key: str, value: Any) -> None:
        assert self.cur is not None
        self.cur.session[key] = value
        self.cur.work[key] = value

    def delete_key(self, key: str) -> None:
        assert self.cur is not None
        del self.cur.session[key]
        del self.cur.work[key]
        self.cur.emptied |= not self.cur.work

    def clear(self, via_data: bool) -> None:
        assert self.cur is not None
        self.cur.emptied |= bool(self.cur.work)
        if via_data:
            self.cur.session.data.clear()
        else:
            self.cur.session.clear()  # MutableMapping.clear: popitem until empty
        self.cur.work.clear()
        assert len(self.cur.session) == 0

    def regenerate(self, grace: float | None) -> None:
        cur = self.cur
        assert cur is not None
        old = cur.session.id
        cur.session.regenerate_id(grace=grace)
        new = cur.session.id
        assert new != old and new not in self.issued and ids.is_well_formed(new)
        self.issued.add(new)
        assert text_of(dict(cur.session)) == text_of(cur.work)
        if cur.stored:
            cur.retired.append((old, self.now + grace if grace else None))
            cur.regenerated_with_grace = bool(grace)
        cur.stored = False  # the new id has no record until write_close
        cur.snapshot = None
        cur.emptied = False

    def request_takes_time(self, dt: float) -> None:
        """Time passing inside a request, well within the lock lease."""
        self.now += dt

    def destroy(self) -> None:
        cur = self.cur
        assert cur is not None
        sid = cur.session.id
        cur.session.destroy()
        self.records.pop(sid, None)
        for old, _ in cur.retired:  # pending retirements are destroyed, not tombstoned
            self.records.pop(old, None)
        assert cur.session.closed and cur.session.id != sid
        cookie = cur.session.set_cookie_header()
        if cur.presented is not None:
            assert cookie is not None and cookie.startswith(f"{self.config.cookie_name}=;")
            assert "Max-Age=0" in cookie
        else:
            assert cookie is None
        self.cur = None

    def write_close(self) -> None:
        cur = self.cur
        assert cur is not None
        s = cur.session
        before = s.id
        renew = bool(cur.emptied and cur.work and cur.stored)
        if renew:  # emptied, then filled again: a new id, the old record deleted
            cur.retired.append((before, None))
            cur.stored = False
        s.write_close()
        assert s.closed
        sid = s.id
        if renew:
            assert sid != before and sid not in self.issued and ids.is_well_formed(sid)
            self.issued.add(sid)
        else:
            assert sid == before
        deadline = self.deadline(cur.created)
        wrote = False
        if (not cur.stored and cur.work) or (cur.stored and text_of(cur.work) != cur.snapshot):
            self.records[sid] = Rec(json.loads(text_of(cur.work)), cur.created, deadline, cur.ua)
            wrote = True
        elif cur.stored and deadline - cur.expires_at >= TOUCH:
            self.records[sid].expires_at = deadline
            event("write_close: touched")
        event(f"write_close: wrote={wrote} renew={renew} retired={len(cur.retired)}")
        for old, until in cur.retired:
            self.records.pop(old, None)
            if until is not None:
                self.tombs[old] = Tomb(sid, until)
        # the response: a cookie naming the session whenever one was created under a new id
        cookie = s.set_cookie_header()
        if wrote and sid != cur.presented:
            assert cookie is not None
        if cookie is not None:
            assert session_cookie(cookie.split("; ")[0], self.config.cookie_name) == sid
            assert "Max-Age" not in cookie  # a browser-session cookie: cookie_lifetime 0
        self.cur = None

    def abort(self) -> None:
        assert self.cur is not None
        self.cur.session.abort()
        assert self.cur.session.set_cookie_header() is None
        self.cur = None

    @rule(
        dt=st.one_of(
            st.floats(0, TOUCH - 1),  # within the touch threshold
            st.floats(TOUCH, IDLE - 1),  # a touch is due, still within the idle timeout
            st.just(IDLE),  # exactly on it: expires_at <= now is expired
            st.floats(IDLE, 3 * IDLE),  # past it
            st.floats(ABSOLUTE, 2 * ABSOLUTE),  # past the absolute timeout
        )
    )
    def advance_clock(self, dt: float) -> None:
        self.now += dt

    @rule(dt=st.floats(0, 3 * IDLE))
    def advance_clock_then_gc(self, dt: float) -> None:
        self.now += dt
        self.gc()

    def gc(self) -> None:
        removed = self.manager.gc()
        dead = [k for k, r in self.records.items() if r.expires_at <= self.now]
        dead_t = [k for k, t in self.tombs.items() if t.until <= self.now]
        for k in dead:
            del self.records[k]
        for k in dead_t:
            del self.tombs[k]
        assert removed == len(dead) + len(dead_t)

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def store_holds_exactly_the_model(self) -> None:
        rows = self.store._rows.data
        expected = {ids.storage_key(i): i for i in [*self.records, *self.tombs]}
        assert set(rows) == set(expected), "store keys differ from the model"
        for key, row in rows.items():
            ids.check_storage_key(key)
            header, body = record.unpack(row.payload)
            sid = expected[key]
            if sid in self.records:
                rec = self.records[sid]
                assert header.successor is None
                assert text_of(codec.decode(body, header.big)) == text_of(rec.data)
                assert row.expires_at == rec.expires_at
                assert header.created == rec.created
            else:
                tomb = self.tombs[sid]
                assert header.successor is not None
                assert ids.open_successor(sid, header.successor) == tomb.successor
                assert row.expires_at == tomb.until == header.grace_until

    @invariant()
    def raw_ids_never_reach_the_store(self) -> None:
        for key, row in self.store._rows.data.items():
            assert key not in self.issued
            for sid in self.issued:
                assert sid.encode() not in row.payload

    @invariant()
    def live_sessions_read_back_and_dead_ones_never_do(self) -> None:
        if self.cur is not None:
            return
        for sid, rec in list(self.records.items()):
            if not self.alive(rec):
                continue
            with self.manager.start(sid, client=CLIENTS[rec.ua], read_only=True) as s:
                assert s.id == sid and not s.is_new
                assert text_of(dict(s)) == text_of(rec.data)
        # destroyed, regenerated away, never written (an expired record still in the store
        # is left to the start rule: looking at it discards it)
        gone = sorted(self.issued - set(self.records) - set(self.tombs))
        for sid in gone[-4:]:
            with self.manager.start(sid, client=CLIENTS["a"], read_only=True) as s:
                assert s.is_new and s.id != sid and dict(s) == {} and not s.is_expired
        for sid in gone:
            assert not self.store.validate_id(ids.storage_key(sid))

    def teardown(self) -> None:
        if self.cur is not None:
            self.cur.session.abort()


MODEL_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class OptimisticSessionModel(SessionModel):
    lock_mode = "optimistic"


class NoLockSessionModel(SessionModel):
    lock_mode = "none"


TestSessionModel = SessionModel.TestCase
TestSessionModel.settings = MODEL_SETTINGS
TestOptimisticSessionModel = OptimisticSessionModel.TestCase
TestOptimisticSessionModel.settings = settings(MODEL_SETTINGS, max_examples=30)
TestNoLockSessionModel = NoLockSessionModel.TestCase
TestNoLockSessionModel.settings = settings(MODEL_SETTINGS, max_examples=30)


def test_double_regenerate_with_grace_forwards_to_the_final_id() -> None:
    now = [1_700_000_000.0]
    manager = SessionManager(MemoryStore(), Config(), clock=lambda: now[0])
    with manager.start(None) as s:
        s["user"] = 1
    first = s.id
    with manager.start(first) as s:
        s.regenerate_id(grace=30)
        s.regenerate_id(grace=30)  # e.g. login, then a privilege change, in one request
        s["role"] = "admin"
    final = s.id
    now[0] += 1
    with manager.start(first) as in_flight:
        assert in_flight.id == final
        assert dict(in_flight) == {"user": 1, "role": "admin"}
