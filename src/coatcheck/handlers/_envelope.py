"""The string a PHP-shaped handler stores: coatcheck's metadata line, then the payload.

A handler keeps one string per id and nothing else, so what the store contract keeps beside
the payload (the idle deadline, the version, the lock lease) travels inside that string::

    {"coatcheck":1,"e":1767225600.0,"v":3,"t":"<lock token>","u":1767225630.0}
    <the payload: coatcheck's own record, a header line and the JSON data>

The payload is stored as text when it is UTF-8 (it always is, unless an encrypting wrapper
sits in front) and as base64 otherwise (``"b":true``). Anything else a handler returns is
not ours: it reads as "no session", so the engine issues a fresh one.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import orjson

from ..errors import StoreUnavailable
from ..locks import Row

log = logging.getLogger("coatcheck.handlers")

FORMAT = 1


def pack(row: Row) -> str:
    """The string handed to the handler's write() or update_timestamp()."""
    meta: dict[str, Any] = {"coatcheck": FORMAT, "e": row.expires_at, "v": row.version}
    if row.token is not None:
        meta["t"], meta["u"] = row.token, row.lock_until
    try:
        body = row.payload.decode("utf-8")
    except UnicodeDecodeError:
        body = base64.b64encode(row.payload).decode("ascii")
        meta["b"] = True
    return orjson.dumps(meta).decode("ascii") + "\n" + body


def unpack(data: object, method: str = "read") -> Row | None:
    """The row a handler's read() returned: None for nothing stored, or for data not ours.

    PHP's read returns a string, ``""`` when there is no session, and ``false`` when it
    failed: False raises StoreUnavailable. bytes (a BLOB column) are taken as UTF-8.
    """
    if data is False:
        raise StoreUnavailable(f"the session handler's {method}() returned False (it failed)")
    if data is None or data == "" or data == b"":
        return None
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        if not isinstance(text, str):
            raise TypeError(f"{method}() returned {type(data).__name__}, not str")
        return _parse(text)
    except (ValueError, TypeError) as e:  # binascii.Error and JSON errors are ValueErrors
        log.warning("session handler data is not a coatcheck record (%s); treated as none", e)
        return None


def _parse(text: str) -> Row:
    head, sep, body = text.partition("\n")
    if not sep:
        raise ValueError("no header line")
    meta: Any = orjson.loads(head)  # decoded JSON: every field is checked below
    if type(meta) is not dict or meta.get("coatcheck") != FORMAT:
        raise ValueError("unknown header")
    expires_at: Any = meta.get("e")
    version: Any = meta.get("v")
    token: Any = meta.get("t")
    until: Any = meta.get("u", 0.0)
    if type(expires_at) not in (int, float) or type(version) is not int or version < 1:
        raise ValueError("malformed deadline or version")
    if type(token) not in (str, type(None)) or type(until) not in (int, float):
        raise ValueError("malformed lock")
    if meta.get("b", False) is True:
        payload = base64.b64decode(body.encode("ascii"), validate=True)
    elif meta.get("b", False) is False:
        payload = body.encode("utf-8")
    else:
        raise ValueError("malformed flag")
    return Row(payload, float(expires_at), version, token, float(until))


def checked(result: object, method: str) -> None:
    """PHP's bool results: ``False`` is a failure (StoreUnavailable); anything else is done.

    None passes: a Python port that forgets ``return True`` still works.
    """
    if result is False:
        raise StoreUnavailable(f"the session handler's {method}() returned False (it failed)")


def removed(result: object) -> int:
    """PHP's gc returns the number removed, or false when it failed."""
    checked(result, "gc")
    return result if type(result) is int and result > 0 else 0


__all__ = ["FORMAT", "checked", "pack", "removed", "unpack"]
