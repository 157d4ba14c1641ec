"""The session lifecycle as pure decisions: no I/O, no clock of its own.

Given a cookie value, what a store returned and the time, the engine decides: which id
to use, whether stored data may be used (strict mode, expiry, fingerprint), and what to
send back to the store (write, touch, release, nothing) and to the browser (a cookie or
not). The session layer carries the decisions out against a sync or an async store.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import codec, events, ids, record
from .config import Config
from .contract import MUST_CREATE, MUST_EXIST, Stored
from .cookies import CookieAction
from .errors import ConfigError, SessionConflict, SessionTooLarge
from .record import Header

log = logging.getLogger("coatcheck")
security_log = logging.getLogger("coatcheck.security")


@dataclass(frozen=True, slots=True)
class Client:
    """What the request tells about the client, for fingerprint binding.

    ``ip`` must already be the trusted client address (the web layer resolves proxies).
    """

    user_agent: str = ""
    ip: str | None = None


@dataclass(slots=True)
class State:
    """One request's view of one session."""

    id: str
    key: str
    header: Header
    data: dict[str, Any]
    snapshot: bytes | None = None  # data bytes as read, for lazy write and merges
    version: int = 0  # 0: not in the store yet
    expires_at: float = 0.0  # the stored idle deadline
    token: str | None = None  # lock token held, if any
    is_new: bool = True
    is_expired: bool = False
    is_bad_hash: bool = False
    cookie_id_sent: bool = False  # the browser's cookie already carries this id
    header_dirty: bool = False
    force_touch: bool = False
    retired: list[Retired] = field(default_factory=list)
    kept: Kept | None = None  # the expired session kept for database_ttl, for unexpire()


@dataclass(frozen=True, slots=True)
class Kept:
    """An expired session the store keeps for database_ttl: what unexpire() brings back."""

    id: str
    key: str
    header: Header
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Retired:
    """An id given up by regenerate_id: destroyed, or left as a tombstone for a grace window."""

    key: str
    token: str | None
    tombstone: bytes | None
    until: float
    id: str = ""  # the retired id itself, to seal its tombstone again if the id moves on


# Loaded and Write are built on every request, so they are plain (not frozen) slots classes:
# a frozen dataclass's __init__ costs about three times as much.


@dataclass(slots=True)
class Loaded:
    """The outcome of looking at what a store returned for a cookie's id."""

    state: State | None  # None: follow ``follow`` instead
    discard: str | None = None  # key whose stored record must be destroyed
    follow: str | None = None  # id a tombstone points to, within its grace window


@dataclass(slots=True)
class Write:
    payload: bytes
    expires_at: float
    expect: int | None


@dataclass(frozen=True, slots=True)
class Touch:
    expires_at: float


@dataclass(frozen=True, slots=True)
class Release:
    pass


@dataclass(frozen=True, slots=True)
class Nothing:
    pass


Plan = Write | Touch | Release | Nothing


class Engine:
    def __init__(
        self,
        config: Config,
        create_id: Callable[[int], str] = ids.new_id,
        *,
        rng: random.Random | None = None,
        collects: bool = True,
    ) -> None:
        """``create_id`` is PHP's create_sid: the store's, so a custom store can override it.

        ``rng`` draws for probabilistic GC (default: the system's random source);
        ``collects`` False (a store that expires records itself) means no draw ever wins.
        """
        self.config = config
        self._create_id = create_id
        self._rng = rng or random.SystemRandom()
        self._collects = collects and config.gc_probability > 0
        # unknown or expired ids per client address: one "guessing" event past the threshold
        self.guessing = events.GuessingDetector()

    # --- ids ----------------------------------------------------------------------------

    def parse(self, cookie_value: str | None) -> str | None:
        """The id from a cookie, or None when there is none or it is malformed."""
        if cookie_value is None:
            return None
        if ids.is_well_formed(cookie_value, self.config.id_bytes):
            return cookie_value
        security_log.warning("malformed session cookie ignored (length %d)", len(cookie_value))
        return None

    def _new_id(self) -> str:
        sid = self._create_id(self.config.id_bytes)
        if not ids.is_well_formed(sid, self.config.id_bytes):  # our own cookies must parse
            raise ConfigError(
                f"the store's create_id returned an id that is not {self.config.id_bytes} "
                "random bytes in unpadded base64url; strict mode would refuse it"
            )
        return sid

    def fresh(self, now: float, client: Client, new_id: str | None = None) -> State:
        """A new, empty session that exists nowhere until something is written to it."""
        sid = new_id or self._new_id()
        header = Header(created=now, fingerprint=self.fingerprint(sid, client))
        return State(id=sid, key=ids.storage_key(sid), header=header, data={})

    def fingerprint(self, sid: str, client: Client) -> str | None:
        """The keyed hash of the client's fingerprint parts, keyed by the id (never stored)."""
        parts = [
            client.user_agent if part == "user_agent" else ip_prefix(client.ip, self.config)
            for part in self.config.fingerprint
        ]
        if not parts:
            return None
        message = "\0".join(parts).encode("utf-8", "replace")
        return ids.keyed_hash(sid, b"fingerprint", message)

    # --- load ---------------------------------------------------------------------------

    def load(
        self,
        sid: str,
        stored: Stored | None,
        client: Client,
        now: float,
        *,
        followed: bool,
        key: str | None = None,
    ) -> Loaded:
        """Decide what a request may use, given what the store holds under the id's key.

        ``key`` is ids.storage_key(sid), when the caller has it already.
        """
        # No closure for the start-over cases: it would turn every local here into a cell
        # variable, slower to read on every request, though starting over is rare.
        if stored is None:
            self.guessing.unknown_id(client.ip, now)
            return self._start_over(now, client, None)
        key = key or ids.storage_key(sid)
        try:
            header, data_bytes = record.unpack(stored.payload)
            data = codec.decode(data_bytes, header.big)
        except ValueError:
            security_log.warning("corrupt session record discarded; a fresh session was issued")
            return self._start_over(now, client, key)
        if header.successor is not None:
            return self._follow(sid, header, now, followed) or self._start_over(now, client, key)
        if self.expired(header, stored.expires_at, now):
            absolute = header.absolute or self.config.absolute_timeout
            reason = "absolute" if now - header.created >= absolute else "idle"
            events.emit("expired", key, client.ip, reason=reason)
            self.guessing.unknown_id(client.ip, now, key)
            if header.index or not (self.config.database_ttl and stored.expires_at > now):
                return self._start_over(now, client, key, expired=True)
            # kept for database_ttl: a fresh session, with the old data at hand for unexpire()
            loaded = self._start_over(now, client, None, expired=True)
            assert loaded.state is not None
            loaded.state.kept = Kept(sid, key, header, data)
            return loaded
        state = State(
            id=sid,
            key=key,
            header=header,
            data=data,
            snapshot=data_bytes,
            version=stored.version,
            expires_at=stored.expires_at,
            is_new=False,
            cookie_id_sent=not followed,
        )
        expected = self.fingerprint(sid, client)
        if expected is not None and not ids.same(header.fingerprint or "", expected):
            events.emit(
                "fingerprint_mismatch", key, client.ip, policy=self.config.fingerprint_policy
            )
            if self.config.fingerprint_policy == "reset":
                return self._start_over(now, client, key, bad_hash=True)
            state.is_bad_hash = True
        return Loaded(state)

    def _start_over(
        self,
        now: float,
        client: Client,
        discard: str | None,
        *,
        expired: bool = False,
        bad_hash: bool = False,
    ) -> Loaded:
        """A fresh session instead of what was stored; ``discard``: the stored key to destroy."""
        state = self.fresh(now, client)
        state.is_expired, state.is_bad_hash = expired, bad_hash
        return Loaded(state, discard=discard)

    def _follow(self, sid: str, header: Header, now: float, followed: bool) -> Loaded | None:
        """A tombstone's successor to follow, or None when the session must start over."""
        successor = ids.open_successor(sid, header.successor or "")
        live = header.grace_until is not None and header.grace_until > now
        if (
            live
            and not followed
            and successor
            and ids.is_well_formed(successor, self.config.id_bytes)
        ):
            return Loaded(None, follow=successor)
        if not live:
            security_log.warning("a regenerated-away session id was used after its grace window")
        return None

    def expired(self, header: Header, expires_at: float, now: float) -> bool:
        """``expires_at`` as stored: past the idle deadline by the record's retention."""
        return expired(header, expires_at, now, self.config)

    def deadline(self, header: Header, now: float) -> float:
        idle = header.idle or self.config.idle_timeout
        absolute = header.absolute or self.config.absolute_timeout
        return min(now + idle, header.created + absolute)

    # --- save ---------------------------------------------------------------------------

    def plan(self, state: State, now: float, mode: str) -> Plan:
        """What to send the store at write_close. Raises EncodeError or SessionTooLarge."""
        data_bytes, big = codec.encode(state.data)
        if state.version == 0 and not state.data and not state.header_dirty:
            return Nothing()  # an untouched new session creates nothing
        changed = data_bytes != state.snapshot or state.header_dirty
        deadline = self.deadline(state.header, now)
        if state.version == 0 or changed or not self.config.lazy_write:
            state.header.big = big
            # kept past its idle deadline for database_ttl (unexpire): the store's deadline
            # is that much later; the header says how much, so a changed setting reads right
            state.header.retention = self.config.database_ttl or None
            deadline += self.config.database_ttl
            payload = record.pack(state.header, data_bytes)
            if len(payload) > self.config.max_bytes:
                raise SessionTooLarge(len(payload), self.config.max_bytes)
            if state.version == 0:
                expect: int | None = MUST_CREATE
            elif mode == "exclusive" and state.token is not None:
                expect = None
            elif mode == "optimistic":
                expect = state.version
            else:
                expect = MUST_EXIST
            return Write(payload, deadline, expect)
        deadline += state.header.retention or 0.0
        if state.force_touch or deadline - state.expires_at >= self.config.touch_threshold:
            return Touch(deadline)
        return Release() if state.token is not None else Nothing()

    def merge(self, state: State, theirs_stored: Stored) -> dict[str, Any]:
        """Optimistic mode: apply this request's changes onto what another request wrote.

        A key both requests changed from the same base is a conflict, even when both wrote
        the same value: two requests that each set ``n`` from 1 to 2 meant two increments,
        and merging them as one would lose an update with every response a success.
        What the other request wrote becomes this request's new base (``state.snapshot``),
        so a second lost race compares against it, not against the first read.
        """
        base = codec.decode(state.snapshot, state.header.big) if state.snapshot else {}
        mine = state.data
        try:
            their_header, theirs_bytes = record.unpack(theirs_stored.payload)
            theirs = codec.decode(theirs_bytes, their_header.big)
        except ValueError:
            # as load() does with a corrupt record (or one sealed under a key this server
            # lacks): nothing in it can be used, so this request's data replaces it
            security_log.warning("corrupt session record met while merging; replaced")
            state.snapshot = None
            return dict(mine)
        merged = dict(theirs)
        conflicts = []
        for k in set(base) | set(mine):
            b, m = base.get(k, _MISSING), mine.get(k, _MISSING)
            if _equal(b, m):
                continue  # not changed by this request
            t = theirs.get(k, _MISSING)
            if not _equal(t, b):  # changed by both
                conflicts.append(k)
                if self.config.conflict_resolution == "theirs":
                    continue
            if m is _MISSING:
                merged.pop(k, None)
            else:
                merged[k] = m
        if conflicts and self.config.conflict_resolution == "raise":
            raise SessionConflict(sorted(conflicts))
        state.snapshot, state.header.big = theirs_bytes, their_header.big
        return merged

    # --- regenerate ---------------------------------------------------------------------

    def regenerate(
        self, state: State, now: float, client: Client, *, delete_old: bool, grace: float | None
    ) -> State:
        """Move the session's data to a fresh id; the old id is retired at write_close."""
        new = self.fresh(now, client)
        grace = self.config.regenerate_grace if grace is None else grace
        # a second regenerate in one request: earlier tombstones point at the final id, as
        # the id in between is never stored
        state.retired = [
            old
            if old.tombstone is None
            else dataclasses.replace(
                old, tombstone=self._tombstone(state.header.created, old.id, new.id, old.until)
            )
            for old in state.retired
        ]
        if state.version:
            tombstone = None
            if grace > 0:
                tombstone = self._tombstone(state.header.created, state.id, new.id, now + grace)
            if delete_old or tombstone is not None:
                state.retired.append(
                    Retired(state.key, state.token, tombstone, now + grace, state.id)
                )
            elif state.token is not None:
                state.retired.append(Retired(state.key, state.token, None, -1.0, state.id))
        new.header = Header(
            created=state.header.created,
            idle=state.header.idle,
            absolute=state.header.absolute,
            fingerprint=new.header.fingerprint,
            browser=state.header.browser,
            user=state.header.user,
        )
        new.data = state.data
        new.retired = state.retired
        new.is_new = state.is_new
        new.is_expired, new.kept = state.is_expired, state.kept
        return new

    # --- unexpire -----------------------------------------------------------------------

    def unexpire(self, state: State, now: float) -> bool:
        """Bring back the data of the expired session kept for database_ttl (seed 003).

        The data moves to this request's fresh id (``state`` is the session started in its
        place) and its clocks start again: a new creation time, the old per-session
        timeouts, user and cookie kind. The kept record is deleted at write_close.
        """
        kept = state.kept
        if kept is None:
            return False
        old = kept.header
        state.header = Header(
            created=now,
            idle=old.idle,
            absolute=old.absolute,
            fingerprint=state.header.fingerprint,
            browser=old.browser,
            user=old.user,
        )
        state.data = {**kept.data, **state.data}  # what this request set already wins
        state.header_dirty = True
        state.kept = None
        state.retired = [
            dataclasses.replace(r, until=0.0) if r.key == kept.key else r for r in state.retired
        ]
        return True

    @staticmethod
    def _tombstone(created: float, old_id: str, new_id: str, until: float) -> bytes:
        head = Header(
            created=created, successor=ids.seal_successor(old_id, new_id), grace_until=until
        )
        return record.pack(head, b"{}")

    # --- cookie and gc ------------------------------------------------------------------

    def cookie(
        self, state: State, plan: Plan, destroyed: bool, had_cookie: bool, now: float
    ) -> CookieAction | None:
        """What Set-Cookie to send after write_close.

        A destroyed session expires the cookie, unless a fresh session continued
        (``destroy(restart=True)``) and was written: then its own cookie replaces the old.
        """
        if isinstance(plan, Nothing | Release):
            if destroyed:
                return CookieAction(None, 0) if had_cookie else None
            if state.version and not state.cookie_id_sent:  # followed a tombstone: move on
                return CookieAction(state.id, self.max_age(state, now))
            return None
        persistent = self.max_age(state, now)
        if (
            not state.cookie_id_sent
            or (persistent is not None and isinstance(plan, Write | Touch))
            or (isinstance(plan, Write) and state.header_dirty)  # remember() or forget()
        ):
            return CookieAction(state.id, persistent)
        return None

    def max_age(self, state: State, now: float) -> int | None:
        """The cookie's Max-Age at ``now``: None for a browser-session cookie.

        Never longer than the server keeps the session: the idle deadline, capped by the
        absolute one (counted from creation), so a "remember me" cookie with an idle timeout
        past the absolute cap does not outlive the session it names.
        """
        if state.header.browser:
            return None
        if state.header.idle:
            wanted = int(state.header.idle)
        else:
            wanted = int(self.config.cookie_lifetime)
            if not wanted:
                return None
        # to the second, as Max-Age counts: the cap is read a moment after the deadline was
        # set, and that moment must not cost the cookie a whole second
        left = math.ceil(self.deadline(state.header, now) - now)
        return max(0, min(wanted, left))

    def gc_due(self) -> bool:
        c = self.config
        return self._collects and self._rng.randrange(c.gc_divisor) < c.gc_probability


def expired(header: Header, expires_at: float, now: float, config: Config) -> bool:
    """Whether a session stored until ``expires_at`` is past its idle deadline or its
    absolute one at ``now`` (the one rule the engine, listings and the demo share)."""
    absolute = header.absolute or config.absolute_timeout
    return header.idle_deadline(expires_at) <= now or now - header.created >= absolute


class _Missing:
    pass


_MISSING: Any = _Missing()


def _equal(a: Any, b: Any) -> bool:
    return a is b or (type(a) is type(b) and a == b)


def ip_prefix(ip: str | None, config: Config) -> str:
    """The network of ``ip`` bound by a fingerprint (``ipv4_prefix``/``ipv6_prefix`` bits)."""
    if not ip:
        return ""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    bits = config.ipv4_prefix if addr.version == 4 else config.ipv6_prefix
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))
