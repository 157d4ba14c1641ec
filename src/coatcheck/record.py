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
        out: dict[str, Any] = {"v": FORMAT, "c": self.created}
        for name, short in _SHORT.items():
            value = getattr(self, name)
            if value:
                out[short] = value
        return out


_SHORT = {
    "idle": "i",
    "absolute": "a",
    "fingerprint": "f",
    "big": "j",
    "successor": "s",
    "grace_until": "g",
}


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
    header = Header(created=float(created))
    for name, short in _SHORT.items():
        if short in meta:
            setattr(header, name, meta[short])
    _check_types(header)
    return header, data


def _check_types(h: Header) -> None:
    numbers = (h.idle, h.absolute, h.grace_until)
    if any(v is not None and type(v) not in (int, float) for v in numbers):
        raise ValueError("payload header has a non-numeric timeout")
    strings = (h.fingerprint, h.successor)
    if any(v is not None and type(v) is not str for v in strings):
        raise ValueError("payload header has a malformed hash")
    if type(h.big) is not bool:
        raise ValueError("payload header has a malformed flag")
