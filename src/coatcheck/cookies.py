"""Cookie and Set-Cookie headers (RFC 6265), built and parsed without surprises.

Only the session cookie's own name is looked for; everything else in the header is left
alone. Values that could split a header (``;``, CR, LF, NUL) never reach one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .config import Config


@dataclass(frozen=True, slots=True)
class CookieAction:
    """What to send the browser: ``value`` None means delete the cookie."""

    value: str | None
    max_age: int | None


_UNSAFE = re.compile(r"[;\r\n\x00]")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(stamp: float) -> str:
    """RFC 7231's IMF-fixdate (``Thu, 01 Jan 1970 00:00:00 GMT``) for a Unix time.

    What ``email.utils.formatdate(stamp, usegmt=True)`` gives, at a fifth of its cost: it
    runs on every response that refreshes a persistent cookie.
    """
    t = time.gmtime(stamp)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def session_cookie_values(header: str | None, name: str) -> list[str]:
    """Every distinct value of cookie ``name`` in a Cookie request header, in header order."""
    values: list[str] = []
    for part in (header or "").split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k.strip() == name:
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            if v not in values:
                values.append(v)
    return values


def session_cookie(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie request header, or None.

    None also when the header carries the name with different values. RFC 6265 (5.4) sends
    longer paths first, then older cookies first, so a cookie tossed from a sibling subdomain
    or set for a deeper path can come first: trusting either would let an attacker fix the
    victim's session id. Identical duplicates count as one.
    """
    values = session_cookie_values(header, name)
    return values[0] if len(values) == 1 else None


def set_cookie(config: Config, action: CookieAction, now: float | None = None) -> str:
    """The Set-Cookie header value for ``action`` under ``config``'s cookie settings."""
    value = action.value if action.value is not None else ""
    for piece in (value, config.cookie_path, config.cookie_domain or ""):
        if _UNSAFE.search(piece):
            raise ValueError("cookie value or attribute contains ';', CR, LF or NUL")
    parts = [f"{config.cookie_name}={value}", f"Path={config.cookie_path}"]
    if config.cookie_domain:
        parts.append(f"Domain={config.cookie_domain}")
    if action.value is None:
        parts.append("Max-Age=0")
        parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    elif action.max_age is not None:
        stamp = (time.time() if now is None else now) + action.max_age
        parts.append(f"Max-Age={action.max_age}")
        parts.append(f"Expires={http_date(stamp)}")
    if config.cookie_secure:
        parts.append("Secure")
    if config.cookie_httponly:
        parts.append("HttpOnly")
    if config.cookie_samesite:
        parts.append(f"SameSite={config.cookie_samesite}")
    if config.cookie_partitioned:
        parts.append("Partitioned")
    return "; ".join(parts)
