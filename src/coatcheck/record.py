"""The stored envelope: one header line of metadata, a newline, then the JSON data.

Splitting the two lets lazy write compare the data bytes exactly as read with the data
bytes about to be written, without decoding the header again or re-encoding on load.
The store keeps ``expires_at`` beside the payload (a column, a TTL, a file's mtime): it is
the idle deadline, moved forward by update_timestamp without rewriting the payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

FORMAT = 1


@dataclass(slots=True)
class Header:
    """Server-side metadata of one session."""

    created: float
    idle: float | None = None  # per-session idle timeout override ("remember me")
    absolute: float | None = None  # per-session absolute timeout override
    fingerprint: str | None = None  # keyed hash of the client's fingerprint parts
    big: bool = False  # data was encoded by the big-int encoder
    successor: str | None = None  # sealed new id, in a tombstone left by regenerate_id
    grace_until: float | None = None  # a tombstone follows its successor until then
    browser: bool = False  # a browser-session cookie, whatever cookie_lifetime says (forget())
    user: str | None = None  # who logged in (session.login): the per-user index lists it
    retention: float | None = None  # database_ttl when written: expires_at is this much late
    index: bool = False  # not a session: a user's index of sessions (coatcheck.users)

    def idle_deadline(self, expires_at: float) -> float:
        """The idle deadline of a record the store keeps until ``expires_at``: that time less
        the retention it was written with (``database_ttl``, for unexpire)."""
        return expires_at - (self.retention or 0.0)

    def last_access(self, expires_at: float, idle_timeout: float) -> float:
        """When the session was last used, to within touch_threshold: its idle deadline less
        its idle timeout (its own, from remember(), else ``idle_timeout``), not before it
        was created. Earlier than the truth when the absolute timeout capped the deadline."""
        return max(self.created, self.idle_deadline(expires_at) - (self.idle or idle_timeout))

    def to_json(self) -> dict[str, Any]:
        # one-letter keys keep the header line short; unpack() reads the same letters
        out: dict[str, Any] = {"v": FORMAT, "c": self.created}
        if self.idle:
            out["i"] = self.idle
        if self.absolute:
            out["a"] = self.absolute
        if self.fingerprint:
            out["f"] = self.fingerprint
        if self.big:
            out["j"] = self.big
        if self.successor:
            out["s"] = self.successor
        if self.grace_until:
            out["g"] = self.grace_until
        if self.browser:
            out["b"] = True
        if self.user is not None:
            out["u"] = self.user
        if self.retention:
            out["r"] = self.retention
        if self.index:
            out["x"] = True
        return out


def pack(header: Header, data_bytes: bytes) -> bytes:
    return b"".join((orjson.dumps(header.to_json()), b"\n", data_bytes))  # one copy, not two


def unpack(payload: bytes) -> tuple[Header, bytes]:
    """Split a payload; raises ValueError when it is not one of ours."""
    head, sep, data = payload.partition(b"\n")
    if not sep:
        raise ValueError("payload has no header line")
    meta = orjson.loads(head)
    if type(meta) is not dict or meta.get("v") != FORMAT:
        raise ValueError("payload header has an unknown format")
    created: Any = meta.get("c")  # decoded JSON: checked on the next line
    if type(created) not in _NUMBER:  # a JSON number; bool is not one here
        raise ValueError("payload header has no creation time")
    get = meta.get
    header = Header(
        created=float(created),
        idle=get("i"),
        absolute=get("a"),
        fingerprint=get("f"),
        big=get("j", False),
        successor=get("s"),
        grace_until=get("g"),
        browser=get("b", False),
        user=get("u"),
        retention=get("r"),
        index=get("x", False),
    )
    _check_types(header)
    return header, data


# exact types: orjson.loads only makes these, and a bool must not pass for a number
_NUMBER = frozenset((int, float))
_NUMBER_OR_NONE = frozenset((int, float, type(None)))
_TEXT_OR_NONE = frozenset((str, type(None)))


def _check_types(h: Header) -> None:
    # straight-line set lookups: this runs on every load
    if (
        type(h.idle) not in _NUMBER_OR_NONE
        or type(h.absolute) not in _NUMBER_OR_NONE
        or type(h.grace_until) not in _NUMBER_OR_NONE
        or type(h.retention) not in _NUMBER_OR_NONE
    ):
        raise ValueError("payload header has a non-numeric timeout")
    if type(h.fingerprint) not in _TEXT_OR_NONE or type(h.successor) not in _TEXT_OR_NONE:
        raise ValueError("payload header has a malformed hash")
    if type(h.user) not in _TEXT_OR_NONE:
        raise ValueError("payload header has a malformed user")
    if type(h.big) is not bool or type(h.browser) is not bool or type(h.index) is not bool:
        raise ValueError("payload header has a malformed flag")
