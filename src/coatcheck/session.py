"""Session and AsyncSession: the mapping an app sees, driving a store.

Every operation is written once, as a generator that yields typed store operations
(:mod:`coatcheck.ops`) and receives their results. :class:`Session` runs those generators
against a sync store, :class:`AsyncSession` against an async one, so the two cannot drift
apart. Decisions come from :class:`~coatcheck.engine.Engine`.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, Protocol, TypeVar, cast

from . import events, ids, ops, users
from .config import Config, LockMode, check_seconds
from .contract import LOCKED, MUST_CREATE, LockRequest, ReadResult, Stored
from .cookies import CookieAction, set_cookie
from .engine import Client, Engine, Nothing, Plan, Release, Retired, State, Touch, Write, ip_prefix
from .errors import (
    IdCollision,
    LockLost,
    LockTimeout,
    SessionClosed,
    SessionGone,
    StoreUnavailable,
    VersionMismatch,
)
from .locks import PendingReleases, backoff, new_token
from .ops import Flow
from .stores.base import AsyncStore, Store

log = logging.getLogger("coatcheck")

T = TypeVar("T")
S = TypeVar("S", bound=Store | AsyncStore)


# Fresh ids a save tries after its first one collides; random ids never collide twice, so
# running out of these means the store's create_id repeats itself.
MAX_ID_RETRIES = 5


class SessionData(dict[str, Any]):
    """A session's data: a real ``dict`` (``json.dumps``, ``==``, ``dict(...)`` and ``copy``
    see its keys), which refuses changes its session could not save (read-only or closed)
    with :class:`~coatcheck.errors.SessionClosed` instead of dropping them silently.

    Copies (``copy.copy``, ``.copy()``, ``dict(data)``) are plain dicts.
    """

    __slots__ = ("_guard", "accessed", "emptied")

    def __init__(self, guard: Callable[[], None]) -> None:
        super().__init__()
        self._guard = guard
        self.accessed = False
        # The app removed every key in this request (clear(), del, pop): a logout. Data
        # written after it belongs to someone else, so it gets a new id at save.
        self.emptied = False

    def mark_accessed(self) -> None:
        """Note that the app looked at the session (Starlette calls this on
        ``request.session``), so the response gets ``Vary: Cookie``."""
        self.accessed = True

    def __setitem__(self, key: str, value: Any) -> None:
        self._guard()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._guard()
        super().__delitem__(key)
        self.emptied |= not self

    def __ior__(self, other: Any) -> SessionData:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        if self:
            self._guard()
            self.emptied = True
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        if key not in self:
            return super().pop(key, *default)
        self._guard()
        value = super().pop(key)
        self.emptied |= not self
        return value

    def popitem(self) -> tuple[str, Any]:
        if self:
            self._guard()
        item = super().popitem()
        self.emptied |= not self
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self._guard()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            self._guard()
        super().update(*args, **kwargs)

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        import copy

        return copy.deepcopy(dict(self), memo)

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))

    def _replace(self, data: dict[str, Any]) -> None:
        """Take ``data`` as the session's data (a load, a reset); not a change by the app."""
        if data is not self:
            dict.clear(self)
            dict.update(self, data)


class ClientSideView(Protocol):
    """A request's own view of a client-side store (``cookie://``'s ``open_request``)."""

    sid: str | None  # the id inside the cookie, None when it did not open
    stale: bool  # sealed under an older key: send it again under the newest
    sealed: str | None  # the cookie value sealed at the last write or touch
    value: str | None  # the cookie value carrying the session now (presented or sealed)


class _Core:
    """The state and flows of one session in one request; no I/O of its own."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float],
        rng: random.Random,
        pending: PendingReleases,
        client: Client,
        *,
        read_only: bool,
        mode: LockMode,
    ) -> None:
        self.engine = engine
        self.config = engine.config
        self.clock = clock
        self.rng = rng
        self.pending = pending
        self.client = client
        self.read_only = read_only
        self.mode: LockMode = mode
        self._state: State = None  # type: ignore[assignment]  # set by start()
        self.data = SessionData(self.check_writable)
        self.closed = False
        self.destroyed = False
        self.had_cookie = False
        self.plan: Plan = Nothing()
        self.client_side: ClientSideView | None = None  # cookie://: the sealed session
        # the per-user index (coatcheck.users): the key and user the session had when it was
        # loaded (an expired one kept for unexpire counts: its data may come back)
        self.origin: tuple[str, str | None] = ("", None)
        self.loaded_user: str | None = None  # the user of the live session loaded

    @property
    def state(self) -> State:
        return self._state

    @state.setter
    def state(self, state: State) -> None:
        # One dict holds the data for the session's whole life, whatever state replaces it,
        # so a reference the app took (``request.session`` under Starlette) stays live.
        self.data._replace(state.data)
        state.data = self.data
        self._state = state

    def check_writable(self) -> None:
        if self.read_only:
            raise SessionClosed("the session was started read-only; changes would not be saved")
        self._check_open()

    # --- start --------------------------------------------------------------------------

    def begin(self, cookie_value: str | None) -> None:
        """A new session for a cookie that names none: no store call, and no GC draw."""
        if self.engine.parse(cookie_value) is not None:
            raise ValueError("the cookie names a session: load it with start()")
        self.had_cookie = cookie_value is not None
        self.state = self.engine.fresh(self.clock(), self.client)
        self.closed = self.read_only

    def start(self, cookie_value: str | None) -> Flow[None]:
        eng = self.engine
        self.had_cookie = cookie_value is not None
        sid = eng.parse(cookie_value)
        followed = False
        if sid is None:
            self.state = eng.fresh(self.clock(), self.client)
        elif self.pending:  # locks whose release failed while the store was down
            yield from self._release_pending()
        while sid is not None:
            key = ids.storage_key(sid)
            locking = self.mode == "exclusive" and not self.read_only
            token = new_token() if locking else None
            lock = LockRequest(token, self.config.lock_lease) if token is not None else None
            stored = yield from self._read(key, lock)
            if stored is LOCKED:  # waiting is rare: its loop lives in a flow of its own
                stored = yield from self._wait_for_lock(key, lock)
            assert stored is None or isinstance(stored, Stored)
            now = self.clock()
            try:
                loaded = eng.load(sid, stored, self.client, now, followed=followed, key=key)
            except Exception:  # a bug, not bad data (that starts over): still free the lock
                if token is not None and stored is not None:
                    yield ops.Release(key, token)
                raise
            if loaded.discard is not None:
                yield ops.Destroy(loaded.discard)
            elif token is not None and stored is not None and loaded.state is None:
                yield ops.Release(key, token)
            if loaded.follow is not None:
                sid, followed = loaded.follow, True
                continue
            assert loaded.state is not None
            self.state = loaded.state
            kept = loaded.state.kept
            if kept is not None:  # expired, kept for unexpire(): its lock goes at write_close
                self.state.retired.append(Retired(key, token, None, -1.0, sid))
            elif token is not None and stored is not None and loaded.discard is None:
                self.state.token = token
            break
        st = self.state
        if st.kept is not None:
            self.origin = (st.kept.key, st.kept.header.user)
        elif st.version:
            self.origin = (st.key, st.header.user)
            self.loaded_user = st.header.user
        if self.read_only:
            self.closed = True
        elif eng.gc_due():
            yield ops.Gc()

    def _read(self, key: str, lock: LockRequest | None) -> Flow[ReadResult]:
        """One read; when a lock-taking read fails, give the lock back, best effort.

        The store may have taken the lock and lost only its reply (a timeout, a connection
        killed mid-reply): left alone, that lock would hold the session for a whole lease.
        """
        try:
            result: ReadResult = yield ops.Read(key, lock)
        except StoreUnavailable:
            if lock is not None:
                yield from self._release_or_remember(key, lock.token)
            raise
        return result

    def _release_or_remember(self, key: str, token: str) -> Flow[bool]:
        """Release ``token``'s lock; if the store fails, remember it for a later request."""
        try:
            yield ops.Release(key, token)
        except Exception:
            log.warning("could not release a session lock; will retry when the store answers")
            self.pending.add(key, token, self.clock() + self.config.lock_lease)
            return False
        return True

    def _release_pending(self) -> Flow[None]:
        """Retry the remembered releases; the first failure puts the rest back untried, so a
        store that is still down costs a request one failed call, not one per lock."""
        held = self.pending.take(self.clock())
        for i, (key, token) in enumerate(held):
            if not (yield from self._release_or_remember(key, token)):
                until = self.clock() + self.config.lock_lease
                for later in held[i + 1 :]:
                    self.pending.add(*later, until)
                return

    def _wait_for_lock(self, key: str, lock: LockRequest | None) -> Flow[ReadResult]:
        """Read again until the lock is free; LockTimeout after lock_wait.

        Between reads, a store that can tell when the lock is released (lock hand-over,
        ``ops.WaitRelease``) wakes this request then; other stores are polled with backoff.
        The wait ends after lock_wait on the clock, or in seconds waited (a clock that
        stands still still ends it); each wake-up counts at least one backoff delay, so
        even a store that kept waking it at once could not keep it waiting forever.
        """
        c = self.config
        delays = backoff(c.lock_backoff, c.lock_backoff_max, c.lock_wait, self.clock, self.rng)
        deadline, left = self.clock() + c.lock_wait, c.lock_wait
        delay = next(delays, None)
        while delay is not None:
            timeout = max(0.0, min(left, deadline - self.clock()))
            notified, waited = yield ops.WaitRelease(key, delay, timeout)
            result = yield from self._read(key, lock)
            if result is not LOCKED:
                return result
            if notified:  # woken by a release another waiter won, or by the timeout
                left -= max(waited, delay)
                if left <= 0 or self.clock() >= deadline:
                    break
            else:
                left -= waited
                delay = next(delays, None)
        raise LockTimeout(f"session is locked by another request; gave up after {c.lock_wait:g}s")

    # --- save ---------------------------------------------------------------------------

    def save(self) -> Flow[None]:
        if self.closed:
            return
        try:
            user = self.state.header.user
            if self.data.emptied and user is not None and user == self.loaded_user:
                self.state.header.user = None  # emptied: a logout, the user goes with the data
                self.state.header_dirty = True
            if self.data.emptied and self.data and self.state.version:
                self._renew()
            # the per-user index: only for a logged-in session (most requests skip the flow)
            indexed = self.state.header.user is not None
            entered = (yield from self._enter_index()) if indexed else None
            try:
                self.plan = yield from self._persist()
            except LockLost:
                events.emit("lock_lost", self.state.key, self.client.ip)
                raise
            plan = self.plan
            if isinstance(plan, Write) and plan.expect == MUST_CREATE:
                events.emit("created", self.state.key, self.client.ip)
            if self.state.retired:
                yield from self._retire()
            if entered is not None:
                yield from self._check_index(entered)
            if (
                self.loaded_user is not None
                and self.loaded_user != self.state.header.user
                and self.client_side is None
            ):
                yield from users.leave(self.loaded_user, [self.origin[0]], self.clock)
        except BaseException:
            yield from self._release_quietly()
            raise
        finally:
            self.closed = True

    def _enter_index(self) -> Flow[str | None]:
        """Enter the session in its user's index before it is written under a new key, a new
        user or new timeouts; returns the key entered (see coatcheck.users for the rules)."""
        state, c = self.state, self.config
        user = state.header.user
        if user is None or self.client_side is not None:  # cookie://: nothing on the server
            return None
        key, was = self.origin
        moved = state.key != key
        if not (moved or user != was or state.header_dirty):
            return None
        ahead = state.header.created + (state.header.absolute or c.absolute_timeout)
        client = users.client_summary(self.client.user_agent, ip_prefix(self.client.ip, c))
        predecessor = key if moved and key and user == was else None
        evicted = yield from users.enter(
            user,
            state.key,
            state.header.created,
            ahead + c.database_ttl,
            client,
            predecessor,
            self.clock,
        )
        if evicted is None:
            raise SessionGone(
                "the user was logged out everywhere while this request ran; nothing was written"
            )
        return state.key

    def _check_index(self, entered: str) -> Flow[None]:
        """After the write: the entry must still be there; a log out everywhere that took it
        out meanwhile ends this session too."""
        state = self.state
        user = state.header.user
        assert user is not None
        if state.key != entered:  # a colliding id was replaced at write: enter the new one
            self.origin = (entered, user)
            if (yield from self._enter_index()) is None:
                return
        if not (yield from users.listed(user, state.key)):
            yield ops.Destroy(state.key)
            raise SessionGone(
                "the user was logged out everywhere while this request ran; the session ended"
            )

    def _renew(self) -> None:
        """Emptied, then written again (``clear()``, then a login): the new data gets a new
        id and the old record is deleted, as Django's ``flush()`` does, so whoever held the
        old id does not hold the new session."""
        self.regenerate(delete_old=True, grace=0)

    def _persist(self) -> Flow[Plan]:
        state, eng, c = self.state, self.engine, self.config
        collisions = 0
        # Optimistic writers that lose a race merge and retry; with many writers on one
        # session a fixed try count starves the unlucky ones, so retries back off with jitter
        # and are bounded by the same lock_wait that bounds waiting for a lock.
        # The first retry is immediate, so lock_wait=0 still merges one lost race.
        # Most saves never lose a race, so the delays are only built at the first lost one.
        delays: Iterator[float] | None = None
        while True:
            plan = eng.plan(state, self.clock(), self.mode)
            try:
                yield from self._carry_out(plan)
                return plan
            except VersionMismatch:
                assert isinstance(plan, Write)
                if plan.expect == MUST_CREATE:  # id collision: take another id
                    collisions += 1
                    if collisions > MAX_ID_RETRIES:
                        raise IdCollision(
                            f"the store's create_id returned an id already in use "
                            f"{collisions} times in a row; check the store's create_id: it "
                            "must return a new random id (coatcheck.ids.new_id) on every call"
                        ) from None
                    new = eng.fresh(state.header.created, self.client)
                    state.id, state.key = new.id, new.key
                    state.header.fingerprint = new.header.fingerprint
                    continue
                theirs = yield ops.Read(state.key)
                if theirs is None:
                    raise SessionGone(
                        "the session was destroyed by another request (a logout?) before "
                        "this write; nothing was written"
                    ) from None
                if self.mode != "optimistic":  # none mode expects only existence
                    continue
                self.data._replace(eng.merge(state, theirs))  # theirs becomes the base
                state.version = theirs.version
                if delays is None:
                    backoffs = backoff(
                        c.lock_backoff, c.lock_backoff_max, c.lock_wait, self.clock, self.rng
                    )
                    delays = itertools.chain([0.0], backoffs)
                delay = next(delays, None)
                if delay is None:
                    raise LockLost(
                        "session kept changing under concurrent writes for lock_wait seconds; "
                        "nothing was written"
                    ) from None
                if delay:
                    yield ops.Sleep(delay)

    def _carry_out(self, plan: Plan) -> Flow[None]:
        state = self.state
        token = state.token
        if isinstance(plan, Write):
            state.version = yield ops.Write(
                state.key, plan.payload, plan.expires_at, plan.expect, token
            )
            state.expires_at = plan.expires_at
        elif isinstance(plan, Touch):
            yield ops.Touch(state.key, plan.expires_at, token)
            state.expires_at = plan.expires_at
        elif isinstance(plan, Release):
            assert token is not None
            yield ops.Release(state.key, token)
        state.token = None

    def _retire(self) -> Flow[None]:
        for old in self.state.retired:
            if old.tombstone is not None:
                try:
                    yield ops.Write(old.key, old.tombstone, old.until, None, old.token)
                except LockLost:
                    yield ops.Destroy(old.key)
            elif old.until >= 0:
                yield ops.Destroy(old.key)
            elif old.token is not None:
                yield ops.Release(old.key, old.token)
        self.state.retired = []

    def _release_quietly(self) -> Flow[None]:
        """Give back every lock this session holds; errors here are logged, not raised."""
        held = [(self.state.key, self.state.token)]
        held += [(r.key, r.token) for r in self.state.retired]
        for key, token in held:
            if token is not None:
                yield from self._release_or_remember(key, token)
        self.state.token = None
        self.state.retired = []

    # --- other lifecycle calls ----------------------------------------------------------

    def abort(self) -> Flow[None]:
        if not self.closed:
            try:
                yield from self._release_quietly()
            finally:
                self.closed = True

    def reset(self) -> Flow[None]:
        self._check_open()
        self.data.emptied = False
        state = self.state
        for old in state.retired:  # regenerate_id undone: give back the old id's lock
            if old.token is not None:
                yield from self._release_or_remember(old.key, old.token)
        state.retired, state.kept = [], None
        if state.version == 0:
            self.data._replace({})
            return
        lock = LockRequest(state.token, self.config.lock_lease) if state.token else None
        stored = yield ops.Read(state.key, lock)
        loaded = self.engine.load(state.id, stored, self.client, self.clock(), followed=False)
        if loaded.state is None or loaded.state.is_new:
            self.data._replace({})
            state.snapshot, state.version = None, 0
            return
        token, sent = state.token, state.cookie_id_sent
        self.state = loaded.state
        self.state.token, self.state.cookie_id_sent = token, sent

    def destroy(self, restart: bool) -> Flow[None]:
        state = self.state
        if state.version:
            yield ops.Destroy(state.key)
            events.emit("destroyed", state.key, self.client.ip)
        kept = state.kept.key if state.kept is not None else None
        for old in state.retired:
            if old.tombstone is not None or old.until >= 0 or old.key == kept:
                yield ops.Destroy(old.key)
            elif old.token is not None:  # kept by regenerate_id(delete_old=False)
                yield from self._release_or_remember(old.key, old.token)
        user = state.header.user if state.version and self.client_side is None else None
        if user is not None:
            try:
                yield from users.leave(user, [state.key], self.clock)
            except Exception:  # the entry is harmless: listing skips sessions that are gone
                log.warning("could not take a destroyed session out of its user's index")
        self.destroyed = True
        self.data.emptied = False
        self.state = self.engine.fresh(self.clock(), self.client)
        self.closed = not restart
        if not restart:
            self.plan = Nothing()

    def gc(self) -> Flow[int]:
        removed: int = yield ops.Gc()
        return removed

    def regenerate(self, delete_old: bool, grace: float | None) -> None:
        self._check_open()
        if self.state.version:  # a stored session moves on (an unsaved one has no past)
            events.emit(
                "regenerated", self.state.key, self.client.ip, delete_old=delete_old, grace=grace
            )
        self.state = self.engine.regenerate(
            self.state, self.clock(), self.client, delete_old=delete_old, grace=grace
        )
        self.data.emptied = False  # a new id already

    def unexpire(self) -> bool:
        self.check_writable()
        state = self.state
        kept = state.kept
        if kept is None or not self.engine.unexpire(state, self.clock()):
            return False
        self.state = state  # the data dict takes the kept data
        events.emit("unexpired", state.key, self.client.ip, was=kept.key)
        return True

    def set_user(self, user: str | None, *, login: bool) -> None:
        self.check_writable()
        if user is not None:
            users.check_user(user)
        if login:
            self.regenerate(delete_old=True, grace=None)
        header = self.state.header
        if header.user != user or login:
            header.user = user
            self.state.header_dirty = True
        if login:
            events.emit("login", self.state.key, self.client.ip)

    def index_flow(self, everywhere: bool) -> Flow[Any]:
        """The user's sessions, or (``everywhere``) log them out but this one."""
        if self.client_side is not None:
            users.refuse_client_side()
        user, key = self.state.header.user, self.state.key
        if user is None:
            return 0 if everywhere else []
        if everywhere:
            count = yield from users.logout(user, key, self.clock)
            events.emit("logged_out_everywhere", key, self.client.ip, sessions=count)
            return count
        return (yield from users.sessions(user, self.config, self.clock, current=key))

    def _check_open(self) -> None:
        if self.closed:
            raise SessionClosed("the session is closed (written, aborted, destroyed or read-only)")

    def cookie(self) -> CookieAction | None:
        if not self.closed:
            return None
        now = self.clock()
        action = self.engine.cookie(self.state, self.plan, self.destroyed, self.had_cookie, now)
        view = self.client_side
        if view is None or (action is not None and action.value is None):
            return action
        # client-side (cookie://): the cookie carries the session sealed at the last write
        # or touch, so every write and touch sends it, never the bare id
        if view.sealed is None or (action is None and not isinstance(self.plan, Write | Touch)):
            return None
        return CookieAction(view.sealed, self.engine.max_age(self.state, now))


class _Base(MutableMapping[str, Any], Generic[S]):
    """The mapping part, shared by Session and AsyncSession."""

    def __init__(self, manager: _Manager[S], core: _Core, store: S | None = None) -> None:
        self._manager = manager
        self._core = core
        self._store = manager.store if store is None else store  # cookie://: a request's view

    # mapping: the data lives in one SessionData, which refuses changes it could not save
    def __getitem__(self, key: str) -> Any:
        return self._core.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._core.data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._core.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._core.data)

    def __len__(self) -> int:
        return len(self._core.data)

    def __contains__(self, key: object) -> bool:
        return key in self._core.data

    def __repr__(self) -> str:  # never shows the id
        return f"<{type(self).__name__} keys={len(self)} new={self.is_new} closed={self.closed}>"

    def _writable(self) -> None:
        self._core.check_writable()

    @property
    def data(self) -> SessionData:
        """The session's data as a real ``dict`` (for ``json.dumps``, a template, ``==``).

        It is the same object for the whole request and refuses changes that could not be
        saved; ``dict(session.data)`` is a plain copy.
        """
        return self._core.data

    # flags, as in the seed's session handler class
    @property
    def id(self) -> str:
        """The raw session id, for the cookie only: never log or store it."""
        return self._core.state.id

    @property
    def cookie_value(self) -> str | None:
        """What a cookie naming this session holds now, to load it again: its id, or with a
        client-side store (``cookie://``) the session as presented or as last sealed."""
        view = self._core.client_side
        return self._core.state.id if view is None else view.value

    @property
    def is_new(self) -> bool:
        """True when this request started a new session (no usable one was presented)."""
        return self._core.state.is_new

    @property
    def is_expired(self) -> bool:
        """True when the presented session had expired (its data was discarded)."""
        return self._core.state.is_expired

    @property
    def is_bad_hash(self) -> bool:
        """True when the client's fingerprint did not match the session's."""
        return self._core.state.is_bad_hash

    @property
    def closed(self) -> bool:
        return self._core.closed

    @property
    def remembered(self) -> bool:
        """True when the session has timeouts of its own (:meth:`remember`), so its cookie
        outlives the browser."""
        return self._core.state.header.idle is not None

    @property
    def idle_timeout(self) -> float:
        """The idle timeout this session is held to: its own (:meth:`remember`) or the
        configured one."""
        return self._core.state.header.idle or self._manager.config.idle_timeout

    @property
    def absolute_timeout(self) -> float:
        """The hard cap from creation this session is held to."""
        return self._core.state.header.absolute or self._manager.config.absolute_timeout

    @property
    def expires_at(self) -> float:
        """When the session expires (Unix seconds) if the request ended now: the idle
        deadline, capped by the absolute one."""
        return self._core.engine.deadline(self._core.state.header, self._core.clock())

    @property
    def cookie_max_age(self) -> int | None:
        """The cookie's Max-Age: None for a browser-session cookie."""
        return self._core.engine.max_age(self._core.state, self._core.clock())

    @property
    def read_only(self) -> bool:
        return self._core.read_only

    def regenerate_id(self, delete_old: bool = True, grace: float | None = None) -> None:
        """New id, same data (call on login and privilege change; PHP session_regenerate_id).

        The old id is destroyed at write_close, or with a grace window (seconds, default
        ``regenerate_grace``) left as a tombstone that forwards in-flight requests.
        """
        self._core.regenerate(delete_old, grace)

    @property
    def storage_key(self) -> str:
        """The key the store files this session under (a hash of the id): safe to show and
        log, and what the per-user index and ``coatcheck ls`` name sessions by."""
        return self._core.state.key

    @property
    def can_unexpire(self) -> bool:
        """True when the presented session had expired and is still kept (``database_ttl``),
        so :meth:`unexpire` can bring its data back."""
        return self._core.state.kept is not None and not self._core.closed

    def unexpire(self) -> bool:
        """Bring back the data of the expired session this request presented (seed 003),
        under a new id, with its clocks started again; False when there is none to bring
        back (not expired, or not kept: ``database_ttl`` is 0 or has passed). Call it after
        the user proves who they are again, as an expired session may be a stolen one. What
        this request set already wins over the old data."""
        return self._core.unexpire()

    @property
    def user(self) -> str | None:
        """The user this session is logged in as (:meth:`login`), or None."""
        return self._core.state.header.user

    @user.setter
    def user(self, user: str | None) -> None:
        """Mark (or with None, unmark) the session's user; it is entered in (or taken out
        of) the user's index at write_close. Prefer :meth:`login`, which also changes the id."""
        self._core.set_user(user, login=False)

    def login(self, user: str) -> None:
        """Log the session in as ``user``: a new id (against fixation, as regenerate_id) and
        an entry in the user's index (:meth:`user_sessions`, :meth:`logout_everywhere`)."""
        self._core.set_user(user, login=True)

    def touch(self) -> None:
        """Extend the idle deadline at write_close even if under ``touch_threshold``."""
        self._core._check_open()
        self._core.state.force_touch = True

    def remember(self, idle: float, absolute: float | None = None) -> None:
        """Per-session timeouts ("remember me"); also makes the cookie persistent."""
        self._writable()
        idle = check_seconds("remember() idle", idle)
        if absolute is not None:
            absolute = check_seconds("remember() absolute", absolute)
        if idle <= 0 or (absolute is not None and absolute <= 0):
            raise ValueError("remember() timeouts must be greater than 0")
        header = self._core.state.header
        if header.idle == idle and header.absolute == absolute and not header.browser:
            return  # as it is stored: no write for it (and no index update for a login)
        header.idle, header.absolute, header.browser = idle, absolute, False
        self._core.state.header_dirty = True

    def forget(self) -> None:
        """Undo :meth:`remember`: the configured timeouts again, and a browser-session cookie
        (no Max-Age) whatever ``cookie_lifetime`` says (Flask's ``permanent = False``)."""
        self._writable()
        header = self._core.state.header
        if header.browser and header.idle is None and header.absolute is None:
            return
        header.idle = header.absolute = None
        header.browser = True
        self._core.state.header_dirty = True

    def cookie(self) -> CookieAction | None:
        """What to send the browser, once the session is closed (None: send nothing)."""
        return self._core.cookie()

    def set_cookie_header(self) -> str | None:
        """The Set-Cookie header value to send, once the session is closed."""
        action = self._core.cookie()
        if action is None:
            return None
        return set_cookie(self._manager.config, action, now=self._core.clock())


class Session(_Base[Store]):
    """A session backed by a sync store. Use as a context manager or call write_close()."""

    def _run(self, flow: Flow[T]) -> T:
        result = ops.run_sync(self._store, flow)
        if self._core.closed and self._store is not self._manager.store:
            ops.end_request(self._store)  # a request's view: the session is done with it
        return result

    def write_close(self) -> None:
        """Persist now and release the lock; data stays readable (session_write_close)."""
        self._run(self._core.save())

    save = write_close

    def abort(self) -> None:
        """Close without writing (session_abort)."""
        self._run(self._core.abort())

    def reset(self) -> None:
        """Discard this request's changes, reloading the stored data (session_reset)."""
        self._run(self._core.reset())

    def destroy(self, restart: bool = False) -> None:
        """Delete the session from the store; the cookie is deleted at the response.

        ``restart=True`` continues with a fresh empty session (Django's ``flush()``).
        """
        self._run(self._core.destroy(restart))

    def gc(self) -> int:
        """Run garbage collection now (session_gc); returns how many sessions were removed."""
        return self._run(self._core.gc())

    def logout(self) -> None:
        """End the session (its data, its user, its id): ``destroy(restart=True)``."""
        self.destroy(restart=True)

    def user_sessions(self) -> list[users.UserSession]:
        """The live sessions of this session's user (none when not logged in)."""
        result: list[users.UserSession] = self._run(self._core.index_flow(False))
        return result

    def logout_everywhere(self) -> int:
        """Destroy every other session of this session's user; how many."""
        count: int = self._run(self._core.index_flow(True))
        return count

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.write_close()
        else:
            self.abort()


class AsyncSession(_Base[AsyncStore]):
    """A session backed by an async store: the same API, I/O methods awaited."""

    async def _run(self, flow: Flow[T]) -> T:
        result = await ops.run_async(self._store, flow)
        if self._core.closed and self._store is not self._manager.store:
            await ops.aend_request(self._store)  # a request's view: the session is done with it
        return result

    async def write_close(self) -> None:
        await self._run(self._core.save())

    save = write_close

    async def abort(self) -> None:
        await self._run(self._core.abort())

    async def reset(self) -> None:
        await self._run(self._core.reset())

    async def destroy(self, restart: bool = False) -> None:
        await self._run(self._core.destroy(restart))

    async def gc(self) -> int:
        return await self._run(self._core.gc())

    async def logout(self) -> None:
        await self.destroy(restart=True)

    async def user_sessions(self) -> list[users.UserSession]:
        result: list[users.UserSession] = await self._run(self._core.index_flow(False))
        return result

    async def logout_everywhere(self) -> int:
        count: int = await self._run(self._core.index_flow(True))
        return count

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            await self.write_close()
        else:
            await self.abort()


_ANONYMOUS = Client()  # frozen, so one instance serves every request that names no client


class _Manager(Generic[S]):
    def __init__(
        self,
        store: S,
        config: Config | None = None,
        *,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``clock`` (Unix seconds) and ``rng`` are injectable, for tests and simulations.

        The clock is handed to the store, so expiry and leases follow it end to end; the
        random source draws for GC and jitters the lock wait (session ids always come from
        :mod:`secrets`).
        """
        self.store = store
        self.config = config or Config()
        if clock is not None:
            store.clock = clock
        self.clock = store.clock
        self.rng = rng or random.SystemRandom()
        self.engine = Engine(
            self.config, store.create_id, rng=self.rng, collects=not store.expires_itself
        )
        self.pending = PendingReleases()
        # looked up once: every request asks
        self._client_side = bool(getattr(store, "client_side", False))
        self._request_scope: Callable[[], S] | None = getattr(store, "request_scope", None)

    def _core(self, client: Client | None, read_only: bool, lock_mode: LockMode | None) -> _Core:
        return _Core(
            self.engine,
            self.clock,
            self.rng,
            self.pending,
            client or _ANONYMOUS,
            read_only=read_only,
            mode=lock_mode or self.config.lock_mode,
        )

    @property
    def client_side(self) -> bool:
        """True when the store keeps each session in its cookie (``cookie://``)."""
        return self._client_side

    def names_session(self, cookie_value: str | None) -> bool:
        """True when the cookie may name a session, so serving it means :meth:`start` (a
        store read); False when :meth:`begin` serves it. A client-side store's cookie is the
        session itself: whether it opens is known only by trying."""
        if self.client_side:
            return bool(cookie_value)
        return ids.is_well_formed(cookie_value, self.config.id_bytes)

    def _attach(self, core: _Core, cookie_value: str | None) -> tuple[S, str | None]:
        """The store this request runs against, and the cookie value the core starts from.

        A client-side store gives each request a view of the session its cookie carries;
        the core then starts from the id sealed inside (None when the cookie did not open).
        """
        if not self._client_side:  # a PHP-shaped handler (coatcheck.handlers) gives a view
            scope = self._request_scope  # that opens once per request
            return (self.store if scope is None else scope()), cookie_value
        open_request = self.store.open_request  # type: ignore[union-attr]
        view = open_request(cookie_value, self.config, lambda: core.state.id)
        core.client_side = view
        return cast(S, view), view.sid

    def _started(self, core: _Core, cookie_value: str | None) -> None:
        """After start: what a client-side view adds to what the core decided."""
        view = core.client_side
        if view is None:
            return
        core.had_cookie = cookie_value is not None  # a cookie that did not open is expired too
        if view.stale and not core.state.is_new:
            core.state.force_touch = True  # re-sealed under the newest key at write_close


class SessionManager(_Manager[Store]):
    """Starts sessions on a sync store (``open_store(url)``)."""

    def start(
        self,
        cookie_value: str | None = None,
        *,
        client: Client | None = None,
        read_only: bool = False,
        lock_mode: LockMode | None = None,
    ) -> Session:
        """Load (or begin) the session a cookie names (session_start).

        ``read_only``: no lock, no write (PHP's read_and_close).
        """
        core = self._core(client, read_only, lock_mode)
        store, cookie = self._attach(core, cookie_value)
        ops.run_sync(store, core.start(cookie))
        if core.closed and store is not self.store:  # read-only: done with a request's view
            ops.end_request(store)
        self._started(core, cookie_value)
        return Session(self, core, store)

    def begin(
        self,
        cookie_value: str | None = None,
        *,
        client: Client | None = None,
        read_only: bool = False,
        lock_mode: LockMode | None = None,
    ) -> Session:
        """A new session for a request whose cookie names none (absent or malformed).

        No store call at all, not even PHP's GC draw: the caller draws for GC
        (``engine.gc_due()``) when it saves. ValueError if the cookie names a session.
        """
        if self.client_side and cookie_value:
            raise ValueError("the cookie may carry a session: load it with start()")
        core = self._core(client, read_only, lock_mode)
        store, cookie = self._attach(core, cookie_value)
        core.begin(cookie)
        return Session(self, core, store)

    def gc(self) -> int:
        return self.store.gc()

    def user_sessions(self, user: str) -> list[users.UserSession]:
        """``user``'s live sessions (storage keys, created, last access, client at login)."""
        return users.user_sessions(self.store, user, self.config)

    def logout_user(self, user: str, keep: str | None = None) -> int:
        """Destroy ``user``'s sessions, but the one with storage key ``keep``; how many."""
        return users.logout_user(self.store, user, keep=keep, config=self.config)


class AsyncSessionManager(_Manager[AsyncStore]):
    """Starts sessions on an async store (``open_async_store(url)``)."""

    async def start(
        self,
        cookie_value: str | None = None,
        *,
        client: Client | None = None,
        read_only: bool = False,
        lock_mode: LockMode | None = None,
    ) -> AsyncSession:
        core = self._core(client, read_only, lock_mode)
        store, cookie = self._attach(core, cookie_value)
        await ops.run_async(store, core.start(cookie))
        if core.closed and store is not self.store:  # read-only: done with a request's view
            await ops.aend_request(store)
        self._started(core, cookie_value)
        return AsyncSession(self, core, store)

    def begin(
        self,
        cookie_value: str | None = None,
        *,
        client: Client | None = None,
        read_only: bool = False,
        lock_mode: LockMode | None = None,
    ) -> AsyncSession:
        """:meth:`SessionManager.begin`: synchronous here too, as it makes no store call."""
        if self.client_side and cookie_value:
            raise ValueError("the cookie may carry a session: load it with start()")
        core = self._core(client, read_only, lock_mode)
        store, cookie = self._attach(core, cookie_value)
        core.begin(cookie)
        return AsyncSession(self, core, store)

    async def gc(self) -> int:
        return await self.store.gc()

    async def user_sessions(self, user: str) -> list[users.UserSession]:
        return await users.auser_sessions(self.store, user, self.config)

    async def logout_user(self, user: str, keep: str | None = None) -> int:
        return await users.alogout_user(self.store, user, keep=keep, config=self.config)
