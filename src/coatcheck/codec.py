"""Payload encoding: JSON, never pickle.

orjson does the work; values it would change (NaN, tuples, 64-bit overflow) are caught
by one walk over the data first. Integers beyond 64 bits make the payload go through the
standard library's json module instead, so they round-trip exactly; the record header
notes which encoder was used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

from .errors import EncodeError

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
_MAX_DEPTH = 64
_PLAIN = {str, bool, type(None)}  # always JSON as they are


def _check(value: Any, path: str | None, depth: int) -> bool:
    """Refuse what JSON would not give back unchanged; return True if a big int was seen.

    ``path`` names the value in error messages. Building it for every nested value costs
    more than the checks themselves, so the first walk passes None and :func:`encode` walks
    again with paths only when something was refused.
    """
    if depth > _MAX_DEPTH:
        raise EncodeError(f"session value at {path} is nested deeper than {_MAX_DEPTH} levels")
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return False
    if kind is int:
        return not (_INT64_MIN <= value <= _UINT64_MAX)
    if kind is float:
        if not math.isfinite(value):
            raise EncodeError(f"session value at {path} is {value!r}, which JSON cannot hold")
        return False
    if kind is dict:
        big = False
        for k, v in value.items():
            if type(k) is not str:
                raise EncodeError(f"session key {k!r} at {path} is not a str")
            t = type(v)  # most values are plain: skip the call for them
            plain = t in _PLAIN or (t is int and _INT64_MIN <= v <= _UINT64_MAX)
            if plain and depth < _MAX_DEPTH:
                continue
            big = _check(v, None if path is None else f"{path}[{k!r}]", depth + 1) or big
        return big
    if kind is list:
        big = False
        for i, v in enumerate(value):
            t = type(v)
            plain = t in _PLAIN or (t is int and _INT64_MIN <= v <= _UINT64_MAX)
            if plain and depth < _MAX_DEPTH:
                continue
            big = _check(v, None if path is None else f"{path}[{i}]", depth + 1) or big
        return big
    raise EncodeError(
        f"session value at {path} is a {kind.__name__}; store only str, int, float, bool, "
        "None, list and dict (convert it first, e.g. a datetime to an ISO string)"
    )


def encode(data: Mapping[str, Any]) -> tuple[bytes, bool]:
    """Encode session data; returns the bytes and whether the big-int encoder was needed."""
    if type(data) is not dict:
        data = dict(data)
    try:
        big: bool | None = _check(data, None, 0)
    except EncodeError:
        big = None
    if big is None:  # refused: the same walk again, this time naming where the bad value is
        _check(data, "session", 0)
        raise EncodeError("session data cannot be stored as JSON")  # only if it changed since
    try:
        if big:
            text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            return text.encode("utf-8"), True
        return orjson.dumps(data), False
    except ValueError as e:
        if not isinstance(e, UnicodeEncodeError):  # an int over Python's str digit limit
            raise EncodeError(
                f"session data holds an integer too large to store as text ({e}); "
                "store it as a string"
            ) from None
        raise _surrogate(data) from None
    except TypeError:
        raise _surrogate(data) from None


def _surrogate(data: Mapping[str, Any]) -> EncodeError:
    return EncodeError(  # a str that is not text: a lone surrogate
        f"session {_unencodable(data, 'session')} holds a lone surrogate, which UTF-8 cannot "
        "encode (it usually comes from a JSON body with an escaped half of "
        "a character pair); clean the string first"
    )


def _unencodable(value: Any, path: str) -> str:
    """Where the first string that UTF-8 cannot encode sits (a key or a value)."""
    items: list[tuple[Any, str]] = []
    if type(value) is dict:
        for k, v in value.items():
            if not _utf8(k):
                return f"key {k!r} at {path}"
            items.append((v, f"{path}[{k!r}]"))
    elif type(value) is list:
        items = [(v, f"{path}[{i}]") for i, v in enumerate(value)]
    elif type(value) is str and not _utf8(value):
        return f"value at {path}"
    for v, where in items:
        found = _unencodable(v, where)
        if found:
            return found
    return ""


def _utf8(text: Any) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decode(raw: bytes, big: bool) -> dict[str, Any]:
    """Decode what :func:`encode` produced; raises ValueError on anything else."""
    try:
        value = json.loads(raw) if big else orjson.loads(raw)
    except RecursionError:  # stdlib json on hostile nesting; orjson refuses it by itself
        raise ValueError("session payload is nested too deeply") from None
    if type(value) is not dict:
        raise ValueError("session payload is not a JSON object")
    return value
