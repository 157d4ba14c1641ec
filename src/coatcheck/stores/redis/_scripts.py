"""The Redis store's key layout and Lua scripts, and the glue around them: arguments in,
replies out (no I/O here; :mod:`._async` sends them).

A session is two keys sharing one hash tag, so both live on the same Cluster slot and one
script can touch both: ``<prefix>{<storage key>}`` is a hash (``p`` payload, ``e`` idle
deadline in seconds as written by the app, ``v`` version) and ``<prefix>{<storage key>}:lock``
holds the lock token with the lease as its own ``PX`` expiry. Each store operation is one
script (one round trip, atomic on the server); the plain read is one ``HMGET``.

Clocks: lease expiry is the lock key's TTL (a duration, so only the server's clock counts);
the data key's TTL is the remaining idle time computed from the app's clock and set with
``PEXPIRE`` (a duration too), so a skewed Redis clock never shortens or stretches a session.
The scripts also compare ``e`` with the app's "now", so a record whose deadline has passed is
never returned as live, whatever the TTL rounding.

Lock hand-over: a waiter announces itself (:data:`ANNOUNCE`) by setting a third key,
``<prefix>{<storage key>}:wait``, which lives no longer than the lease it waits on. Whatever
frees the lock (write, touch, release, destroy) deletes that key and, only when it was
there, publishes the storage key on the store's channel, ``<prefix>released``
(:func:`channel`). A lock nobody waits for costs one ``DEL`` of a missing key, in the same
script: no round trip, no message. A notice wakes one waiter per process; while others of
that process still wait, its lock-taking reads keep the lock flagged for them.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Final

from ...ids import check_storage_key
from ...locks import changed, lease_lost
from ..base import LOCKED, LockRequest, Meta, ReadResult, Stored

# Frees a lock's waiters: KEYS[3] (or the wait key given) is '<prefix>{<key>}:wait'. A waiter
# set it, so publish the storage key on '<prefix>released' (classic PUBLISH: it reaches a
# subscriber on any node of a Cluster, and a replica's subscribers too).
_NOTIFY: Final = """
local function notify(wait)
  if redis.call('DEL', wait) == 1 then
    local prefix, key = string.match(wait, '^(.*){(.*)}:wait$')
    redis.call('PUBLISH', prefix .. 'released', key)
  end
end
"""

# KEYS: data, lock, wait. ARGV: token, lease ms, app now (s), others wait ('1' or '').
# Returns {p, e, v}; false when absent or past its deadline; 0 when another token holds it.
# ARGV[4] = '1' when other requests of this process wait for this lock (they were not all
# woken by the last release): the lock stays flagged for them, whoever holds it now.
READ_LOCK: Final = """
local r = redis.call('HMGET', KEYS[1], 'p', 'e', 'v')
if not r[1] or tonumber(r[2]) <= tonumber(ARGV[3]) then return false end
local held = redis.call('GET', KEYS[2])
if held and held ~= ARGV[1] then
  if ARGV[4] == '1' then
    local ttl = redis.call('PTTL', KEYS[2])
    if ttl > 0 then redis.call('SET', KEYS[3], '1', 'PX', ttl) end
  end
  return 0
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if ARGV[4] == '1' then redis.call('SET', KEYS[3], '1', 'PX', ARGV[2]) end
return r
"""

# KEYS: data, lock, wait. ARGV: payload, deadline (s), ttl ms, expect ('' = any),
# token ('' = none). Returns the new version; -1 when the token does not hold the lock
# (LockLost); -2 when the version check fails (VersionMismatch). Nothing is changed on failure.
WRITE: Final = (
    _NOTIFY
    + """
local tok = ARGV[5]
if tok ~= '' and redis.call('GET', KEYS[2]) ~= tok then return -1 end
local v = redis.call('HGET', KEYS[1], 'v')
if ARGV[4] ~= '' then
  local want = tonumber(ARGV[4])
  local ok
  if want == 0 then ok = not v
  elseif want == -1 then ok = v
  else ok = v and tonumber(v) == want end
  if not ok then return -2 end
end
local nv = (tonumber(v) or 0) + 1
redis.call('HSET', KEYS[1], 'p', ARGV[1], 'e', ARGV[2], 'v', nv)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if tok ~= '' then
  redis.call('DEL', KEYS[2])
  notify(KEYS[3])
end
return nv
"""
)

# KEYS: data, lock, wait. ARGV: deadline (s), ttl ms, token ('' = none). Only moves the
# deadline forward, never creates the record; releases the token's lock either way.
TOUCH: Final = (
    _NOTIFY
    + """
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
  notify(KEYS[3])
end
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(ARGV[1]) > tonumber(e) then
  redis.call('HSET', KEYS[1], 'e', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
)

# KEYS: lock, wait. ARGV: token. Compare-and-delete. (Lua compares interned strings by
# identity, and the token never leaves the server, so this comparison leaks nothing by its
# timing.)
RELEASE: Final = (
    _NOTIFY
    + """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  notify(KEYS[2])
  return 1
end
return 0
"""
)

# KEYS: data, lock, wait. Deletes the record and its lock, and frees the lock's waiters.
DESTROY: Final = (
    _NOTIFY
    + """
redis.call('DEL', KEYS[1], KEYS[2])
notify(KEYS[3])
return 0
"""
)

# KEYS: lock, wait. A waiter announces itself (after subscribing to the channel): when the
# lock is held, mark it as waited for, for as long as its lease, and return the lease's
# milliseconds left; 0 when it is free (the waiter reads again at once). A lock without an
# expiry (never made here) is marked for a minute, and returns -1.
ANNOUNCE: Final = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -2 or ttl == 0 then return 0 end
redis.call('SET', KEYS[2], '1', 'PX', ttl > 0 and ttl or 60000)
return ttl
"""

_LOCK_SUFFIX: Final = ":lock"
_WAIT_SUFFIX: Final = ":wait"


class Script:
    """A Lua script run by SHA1 (EVALSHA); the caller loads it on NOSCRIPT and retries.

    Lighter than redis-py's ``register_script`` wrapper, which costs more per call than
    the rest of the store together; the commands on the wire are the same.
    """

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


READ_LOCK_SCRIPT: Final = Script(READ_LOCK)
WRITE_SCRIPT: Final = Script(WRITE)
TOUCH_SCRIPT: Final = Script(TOUCH)
RELEASE_SCRIPT: Final = Script(RELEASE)
DESTROY_SCRIPT: Final = Script(DESTROY)
ANNOUNCE_SCRIPT: Final = Script(ANNOUNCE)


class Keys:
    """Key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.all_pattern = _glob_escape(prefix) + "*"
        self.data_pattern = _glob_escape(prefix) + "{*}"

    def data(self, key: str) -> str:
        """The data key of storage key ``key``; ValueError for anything else, as every store."""
        return f"{self.prefix}{{{check_storage_key(key)}}}"

    def pair(self, key: str) -> list[str]:
        data = self.data(key)
        return [data, data + _LOCK_SUFFIX]

    def trio(self, key: str) -> list[str]:
        """Data, lock and wait keys: one hash tag, so one Cluster slot."""
        data = self.data(key)
        return [data, data + _LOCK_SUFFIX, data + _WAIT_SUFFIX]

    def storage_key(self, data_key: bytes | str) -> str:
        name = data_key.decode() if isinstance(data_key, bytes) else data_key
        return name[len(self.prefix) + 1 : -1]


def channel(prefix: str) -> str:
    """The channel a store's releases are published on, when someone waits for them."""
    return prefix + "released"


def lease_left(reply: Any) -> float | None:
    """ANNOUNCE's reply: seconds left on the lease (inf when it has none), None when free."""
    ms = int(reply)
    if ms == 0:
        return None
    return math.inf if ms < 0 else ms / 1000


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def ttl_ms(expires_at: float, now: float) -> int:
    """Milliseconds left until ``expires_at`` on the app's clock; at least 1."""
    return max(1, math.ceil((expires_at - now) * 1000))


def read_lock_args(lock: LockRequest, now: float, others_wait: bool = False) -> list[Any]:
    lease = max(1, math.ceil(lock.lease * 1000))
    return [lock.token, lease, repr(now), "1" if others_wait else ""]


def decode_read(raw: Any, now: float) -> ReadResult:
    """A script or HMGET reply as a ReadResult; records past their deadline read as absent."""
    if raw == 0:
        return LOCKED
    if not raw or raw[0] is None:
        return None
    expires_at = float(raw[1])
    if expires_at <= now:
        return None
    return Stored(raw[0], expires_at, int(raw[2]))


def write_args(
    payload: bytes, expires_at: float, now: float, expect: int | None, token: str | None
) -> list[Any]:
    want = "" if expect is None else str(expect)
    return [payload, repr(expires_at), ttl_ms(expires_at, now), want, token or ""]


def decode_write(code: Any) -> int:
    version = int(code)
    if version == -1:
        raise lease_lost()
    if version == -2:
        raise changed()
    return version


def touch_args(expires_at: float, now: float, token: str | None) -> list[Any]:
    return [repr(expires_at), ttl_ms(expires_at, now), token or ""]


def queue_meta(pipe: Any, name: bytes) -> None:
    """Queue what :func:`to_metas` needs about one data key (admin scans)."""
    pipe.hget(name, "e")
    pipe.hstrlen(name, "p")
    pipe.exists(name + _LOCK_SUFFIX.encode())


def to_metas(keys: Keys, names: list[bytes], replies: list[Any], now: float) -> list[Meta]:
    """The live records among ``names``, from the replies :func:`queue_meta` queued."""
    metas = []
    for i, name in enumerate(names):
        deadline, size, locked = replies[3 * i : 3 * i + 3]
        if deadline is not None and float(deadline) > now:
            metas.append(Meta(keys.storage_key(name), float(deadline), int(size), bool(locked)))
    return metas
