"""The per-user session index: which sessions a user is logged in with, and log out everywhere.

A session is marked with its user at login (``session.login(user)`` or ``session.user =``);
the user's index is one more record in the same store, under a key of its own (a hash of the
user name, in a domain no session id can reach), so every store keeps it without new code:
it is read and written through the store contract like a session, and changed only by
compare-and-set (``expect=version``), so concurrent logins never drop each other's entries.

An entry holds what a listing shows (created, the client at login) and the latest moment
its session can still live (creation + absolute timeout + database_ttl): entries past it
are dropped at the next change, so an index never outgrows the sessions it lists.

The rules that keep "log out everywhere" exact while other requests run:

- a session is entered in the index *before* its first write under a new id, and the
  request checks after the write that the entry is still there; if a log out everywhere
  took it out meanwhile, the request deletes what it wrote and raises SessionGone;
- a new id of a logged-in session (regenerate_id, unexpire) names its predecessor, and is
  entered only while the predecessor is still listed: a session logged out everywhere
  cannot live on under a new id;
- log out everywhere first takes the entries out (one compare-and-set), then destroys their
  sessions. A request on one of them that is writing at that moment loses its lock or finds
  its session gone (LockLost, SessionGone): nothing it wrote survives.

Listing reads each listed session (no lock) and shows the live ones; entries whose session
is gone stay until their deadline passes, and are never shown.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from . import ops, record
from .config import Config
from .contract import MUST_CREATE, Stored
from .engine import expired
from .errors import ConfigError, RetryLater, VersionMismatch
from .locks import backoff
from .ops import Flow
from .record import Header
from .stores.base import AsyncStore, Store

log = logging.getLogger("coatcheck")

MAX_SESSIONS = 1000
"""Entries one user's index keeps; past it the oldest logins are logged out (their sessions
destroyed), so the index record stays small enough for every store."""
INDEX_WAIT = 5.0
"""Seconds a change of a user's index keeps retrying lost compare-and-set races (with the
lock wait's jittered backoff) before :class:`IndexBusy`."""
_DOMAIN = b"coatcheck user index\0"
_CLIENT_CHARS = 160


class IndexBusy(RetryLater):
    """A user's session index kept changing under concurrent logins; try again."""


@dataclass(frozen=True, slots=True)
class UserSession:
    """One of a user's live sessions, as a listing shows it (never its id)."""

    key: str  # storage key (a hash of the id): safe to show, log, and pass to logout_user
    user: str
    created: float  # Unix seconds
    last_access: float  # Unix seconds, to within touch_threshold
    expires_at: float  # the idle deadline (capped by the absolute one)
    client: str  # summary of the client at login: user agent, network
    current: bool = False  # the session asking


def index_key(user: str) -> str:
    """The storage key of ``user``'s index: a hash no session id's storage key can equal."""
    check_user(user)
    return hashlib.sha256(_DOMAIN + user.encode("utf-8")).hexdigest()


def check_user(user: object) -> str:
    if not isinstance(user, str) or not user or len(user) > 256:
        raise ValueError("a user must be a non-empty string of at most 256 characters")
    return user


def is_index(payload: bytes) -> bool:
    """True when ``payload`` is a user's index, not a session."""
    try:
        return record.unpack(payload)[0].index
    except ValueError:
        return False


# --- the index record ---------------------------------------------------------------------
# entries: storage key -> [created, until, client, added, predecessor key or ""]
Entries = dict[str, list[Any]]


def _decode(stored: Stored | None, now: float) -> Entries:
    if stored is None:
        return {}
    try:
        header, data = record.unpack(stored.payload)
        entries = orjson.loads(data).get("s") if header.index else None
        if not isinstance(entries, dict):
            raise ValueError("not an index")
        live: Entries = {}
        for key, entry in entries.items():
            if (
                isinstance(entry, list)
                and len(entry) == 5
                and isinstance(entry[1], int | float)
                and entry[1] > now
            ):
                live[key] = entry
        return live
    except (ValueError, AttributeError):
        # unreadable: rebuilt from the next login on (its sessions' records are untouched)
        log.warning("a corrupt user session index was replaced")
        return {}


def _encode(user: str, entries: Entries, now: float) -> tuple[bytes, float]:
    payload = record.pack(Header(created=now, index=True, user=user), orjson.dumps({"s": entries}))
    # kept as long as its longest-lived session can live; an empty one goes at once
    until = max((e[1] for e in entries.values()), default=now + 1.0)
    return payload, until


def _change(
    user: str, change: Callable[[Entries], Entries | None], clock: Callable[[], float]
) -> Flow[Any]:
    """Read the index, apply ``change`` (None: nothing to write), compare-and-set; repeat on
    a lost race. Returns the entries as written (or as read, when nothing changed)."""
    key = index_key(user)
    # the first retry at once, then the lock wait's backoff: jittered, so racing logins part
    delays = itertools.chain([0.0], backoff(0.001, 0.05, INDEX_WAIT, clock))
    for delay in delays:
        if delay:
            yield ops.Sleep(delay)
        stored: Stored | None = yield ops.Read(key)
        now = clock()
        entries = _decode(stored, now)
        new = change(dict(entries))
        if new is None:
            return entries
        payload, until = _encode(user, new, now)
        expect = MUST_CREATE if stored is None else stored.version
        try:
            yield ops.Write(key, payload, until, expect, None)
        except VersionMismatch:
            continue
        return new
    raise IndexBusy(
        f"the session index of a user kept changing under concurrent logins; gave up after "
        f"{INDEX_WAIT:g}s: try again"
    )


def client_summary(user_agent: str, network: str) -> str:
    agent = " ".join(user_agent.split())[:_CLIENT_CHARS] or "unknown client"
    return f"{agent}, {network}" if network else agent


def enter(
    user: str,
    key: str,
    created: float,
    until: float,
    client: str,
    predecessor: str | None,
    clock: Callable[[], float],
) -> Flow[Any]:
    """Enter a session before its first write under ``key``. Returns the keys of the oldest
    logins pushed out past :data:`MAX_SESSIONS` (the caller destroys them), or None when the
    predecessor is no longer listed (logged out everywhere: the caller must not write)."""
    evicted: list[str] = []
    refused = False

    def add(entries: Entries) -> Entries | None:
        nonlocal refused
        evicted.clear()
        refused = predecessor is not None and predecessor not in entries
        if refused:
            return None
        entries[key] = [created, until, client, clock(), predecessor or ""]
        if len(entries) > MAX_SESSIONS:
            oldest = sorted(entries, key=lambda k: entries[k][3])[: len(entries) - MAX_SESSIONS]
            for k in oldest:
                del entries[k]
            evicted.extend(oldest)
        return entries

    yield from _change(user, add, clock)
    if refused:
        return None
    for k in evicted:
        yield ops.Destroy(k)
    return evicted


def listed(user: str, key: str) -> Flow[Any]:
    """True when ``key`` is in ``user``'s index (one read)."""
    stored: Stored | None = yield ops.Read(index_key(user))
    return key in _decode(stored, -math.inf)


def leave(user: str, keys: list[str], clock: Callable[[], float]) -> Flow[Any]:
    """Take ``keys`` out of ``user``'s index (a logout, a session given to another user)."""

    def remove(entries: Entries) -> Entries | None:
        found = [k for k in keys if k in entries]
        for k in found:
            del entries[k]
        return entries if found else None

    yield from _change(user, remove, clock)


def logout(user: str, keep: str | None, clock: Callable[[], float]) -> Flow[Any]:
    """Log ``user`` out everywhere but ``keep``: take the entries out, then destroy their
    sessions (in that order: see the module's rules). Returns how many were destroyed."""
    taken: list[str] = []

    def remove(entries: Entries) -> Entries | None:
        taken[:] = [k for k in entries if k != keep]
        if not taken:
            return None
        return {k: e for k, e in entries.items() if k == keep}

    yield from _change(user, remove, clock)
    for k in taken:
        yield ops.Destroy(k)
    return len(taken)


def sessions(
    user: str, config: Config, clock: Callable[[], float], current: str | None = None
) -> Flow[Any]:
    """``user``'s live sessions, oldest first: the index, then the listed sessions in one
    batched read (no lock)."""
    stored: Stored | None = yield ops.Read(index_key(user))
    now = clock()
    entries = _decode(stored, now)
    if not entries:
        return []
    keys = list(entries)
    records: list[Stored | None] = yield ops.ReadMany(keys)
    found: list[UserSession] = []
    for key, session in zip(keys, records, strict=True):
        if session is None:
            continue
        try:
            header = record.unpack(session.payload)[0]
        except ValueError:
            continue
        if header.user != user or header.index or header.successor is not None:
            continue  # given to another user since, or a regenerated-away id
        if expired(header, session.expires_at, now, config):
            continue
        found.append(
            UserSession(
                key=key,
                user=user,
                created=header.created,
                last_access=min(now, header.last_access(session.expires_at, config.idle_timeout)),
                expires_at=header.idle_deadline(session.expires_at),
                client=str(entries[key][2]),
                current=key == current,
            )
        )
    found.sort(key=lambda s: s.created)
    return found


# --- store-level calls (the CLI, an admin page) --------------------------------------------


def refuse_client_side(store: Store | AsyncStore | None = None) -> None:
    """Raise ConfigError for a client-side store (``cookie://``; None: the caller knows it is
    one): it keeps nothing on the server to list or log out."""
    if store is None or getattr(store, "client_side", False):
        raise ConfigError(
            "the per-user session index needs a server-side store: a cookie:// store keeps "
            "nothing on the server to list or log out"
        )


def user_sessions(store: Store, user: str, config: Config | None = None) -> list[UserSession]:
    """``user``'s live sessions in ``store`` (``config``: the app's timeouts)."""
    refuse_client_side(store)
    result: list[UserSession] = ops.run_sync(
        store, sessions(check_user(user), config or Config(), store.clock)
    )
    return result


def logout_user(
    store: Store, user: str, *, keep: str | None = None, config: Config | None = None
) -> int:
    """Destroy every session of ``user`` but the one with storage key ``keep``; how many."""
    refuse_client_side(store)
    count: int = ops.run_sync(store, logout(check_user(user), keep, store.clock))
    return count


async def auser_sessions(
    store: AsyncStore, user: str, config: Config | None = None
) -> list[UserSession]:
    refuse_client_side(store)
    result: list[UserSession] = await ops.run_async(
        store, sessions(check_user(user), config or Config(), store.clock)
    )
    return result


async def alogout_user(
    store: AsyncStore, user: str, *, keep: str | None = None, config: Config | None = None
) -> int:
    refuse_client_side(store)
    count: int = await ops.run_async(store, logout(check_user(user), keep, store.clock))
    return count


__all__ = [
    "MAX_SESSIONS",
    "IndexBusy",
    "UserSession",
    "alogout_user",
    "auser_sessions",
    "index_key",
    "is_index",
    "logout_user",
    "user_sessions",
]
