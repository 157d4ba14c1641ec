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
        return out


def pack(header: Header, data_bytes: bytes) -> bytes:
    return orjson.dumps(header.to_json()) + b"\n" + data_bytes


def unpack(payload: bytes) -> tuple[Header, bytes]:
    """Split a payload; raises ValueError when it is not one of ours."""
    head, sep, data = payload.partition(b"\n")
    if not sep:
        raise ValueError("payload has no header line")
    meta = orjson.loads(head)
    if type(meta) is not dict or meta.get("v") != FORMAT:
        raise ValueError("payload header has an unknown format")
    created = meta.get("c")
    if not isinstance(created, int | float) or isinstance(created, bool):
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
    )
    _check_types(header)
    return header, data


_NUMBER = (int, float)


def _check_types(h: Header) -> None:
    for number in (h.idle, h.absolute, h.grace_until):
        if number is not None and type(number) not in _NUMBER:
            raise ValueError("payload header has a non-numeric timeout")
    for text in (h.fingerprint, h.successor):
        if text is not None and type(text) is not str:
            raise ValueError("payload header has a malformed hash")
    if type(h.big) is not bool:
        raise ValueError("payload header has a malformed flag")
