"""Every option, validated once when the Config is made.

Each field's comment names the PHP ini directive it mirrors, where one exists, so PHP
users find their way. Times are in seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .errors import ConfigError

LockMode = Literal["exclusive", "optimistic", "none"]
Resolution = Literal["raise", "mine", "theirs"]
FingerprintPart = Literal["user_agent", "ip"]

# RFC 6265 cookie-name token, minus what PHP's session.name also refuses.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-^_`|~0-9A-Za-z]+")
_ATTR_FORBIDDEN = re.compile(r"[;\x00-\x1f\x7f,]")
_DOMAIN = re.compile(
    r"\.?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_COOKIE_LIMIT = 4096  # bytes of name, value and attributes a browser keeps (RFC 6265 6.1)
_ATTRIBUTES = 160  # the most the other attributes take, Expires and Max-Age included


@dataclass(frozen=True, slots=True)
class Config:
    """Session options. Defaults follow PHP 8.6's secure defaults, tightened where noted."""

    # --- cookie -----------------------------------------------------------------------
    cookie_name: str = "session"  # session.name
    cookie_path: str = "/"  # session.cookie_path
    cookie_domain: str | None = None  # session.cookie_domain
    cookie_secure: bool = True  # session.cookie_secure (on by default, unlike PHP)
    cookie_httponly: bool = True  # session.cookie_httponly
    cookie_samesite: Literal["Lax", "Strict", "None"] | None = "Lax"  # session.cookie_samesite
    cookie_partitioned: bool = False  # session.cookie_partitioned (needs cookie_secure)
    cookie_lifetime: float = 0  # session.cookie_lifetime: 0 = browser-session cookie
    # --- ids ----------------------------------------------------------------------------
    id_bytes: int = 32  # random bytes per id (PHP: sid_length x sid_bits_per_character)
    # --- expiry -------------------------------------------------------------------------
    idle_timeout: float = 1440  # session.gc_maxlifetime: idle time before a session expires
    # no PHP ini: hard cap from creation. None: 12 hours, or idle_timeout if that is longer
    absolute_timeout: float = None  # type: ignore[assignment]  # always a float once made
    # Symfony's metadata update threshold for lazy touches. None: 60 s, or a quarter of a
    # shorter idle_timeout, so Config(idle_timeout=60) works as it is
    touch_threshold: float = None  # type: ignore[assignment]
    # seed 003's database_ttl: an expired session is kept this long more, loading empty with
    # is_expired true, so session.unexpire() can bring its data back. 0: deleted at expiry
    database_ttl: float = 0
    gc_probability: int = 1  # session.gc_probability
    gc_divisor: int = 100  # session.gc_divisor
    # --- writes -------------------------------------------------------------------------
    lazy_write: bool = True  # session.lazy_write
    max_bytes: int = 256 * 1024  # largest encoded session accepted (SessionTooLarge)
    # --- locking ------------------------------------------------------------------------
    lock_mode: LockMode = "exclusive"  # PHP's files handler locks; docs/guide.md
    lock_lease: float = 30  # a lock is dropped after this long even if never released
    lock_wait: float = 10  # how long to wait for a busy lock before LockTimeout
    lock_backoff: float = 0.002  # first retry delay; doubles, with jitter, up to lock_backoff_max
    lock_backoff_max: float = 0.1
    conflict_resolution: Resolution = "raise"  # optimistic: same key changed by both
    # --- hijack defences ----------------------------------------------------------------
    fingerprint: tuple[FingerprintPart, ...] = ("user_agent",)
    ipv4_prefix: int = 24  # with "ip" in fingerprint: bits of an IPv4 address bound
    ipv6_prefix: int = 64  # with "ip" in fingerprint: bits of an IPv6 address bound
    fingerprint_policy: Literal["reset", "flag"] = "reset"
    regenerate_grace: float = 0  # old id keeps working this long after regenerate_id

    def __post_init__(self) -> None:
        _normalize(self)
        _validate(self)

    @property
    def host_prefixed(self) -> bool:
        return self.cookie_name.startswith("__Host-")


_CHOICES = {
    "cookie_samesite": ("Lax", "Strict", "None"),
    "lock_mode": ("exclusive", "optimistic", "none"),
    "conflict_resolution": ("raise", "mine", "theirs"),
    "fingerprint_policy": ("reset", "flag"),
}


_TEXT = ("cookie_name", "cookie_path")
_OPTIONAL_TEXT = ("cookie_domain", "cookie_samesite", *_CHOICES)
_FLAGS = ("cookie_secure", "cookie_httponly", "cookie_partitioned", "lazy_write")
_COUNTS = ("id_bytes", "gc_probability", "gc_divisor", "max_bytes", "ipv4_prefix", "ipv6_prefix")
_SECONDS = (
    "cookie_lifetime",
    "idle_timeout",
    "absolute_timeout",
    "touch_threshold",
    "lock_lease",
    "lock_wait",
    "lock_backoff",
    "lock_backoff_max",
    "regenerate_grace",
    "database_ttl",
)
MAX_SECONDS = 100 * 365 * 86400.0  # a century: any longer time cannot be a cookie's Expires


def check_seconds(name: str, value: object) -> float:
    """``value`` as a finite number of seconds up to :data:`MAX_SECONDS`; ConfigError if not."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not -MAX_SECONDS <= value <= MAX_SECONDS:  # also refuses NaN and infinities
        raise ConfigError(f"{name} must be a finite number of seconds up to a century")
    return float(value)


def _check_types(c: Config) -> None:
    """Each option has its type: a mistyped one is a ConfigError, never a crash later."""
    for name in _TEXT:
        if not isinstance(getattr(c, name), str):
            raise ConfigError(f"{name} must be a string")
    for name in _OPTIONAL_TEXT:
        if not isinstance(getattr(c, name), str | None):
            raise ConfigError(f"{name} must be a string or None")
    for name in _FLAGS:
        if not isinstance(getattr(c, name), bool):
            raise ConfigError(f"{name} must be True or False")
    for name in _COUNTS:
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be a whole number, not {type(value).__name__}")
    for name in _SECONDS:
        if getattr(c, name) is not None or name not in ("absolute_timeout", "touch_threshold"):
            check_seconds(name, getattr(c, name))
    if not isinstance(c.fingerprint, tuple | list) or not all(
        isinstance(p, str) for p in c.fingerprint
    ):
        raise ConfigError("fingerprint takes a tuple of parts, e.g. ('user_agent',)")


def _normalize(c: Config) -> None:
    """Fill the defaults that follow other options; accept choices in any letter case."""
    _check_types(c)
    for name, choices in _CHOICES.items():
        value = getattr(c, name)
        if isinstance(value, str):
            by_lower = {choice.lower(): choice for choice in choices}
            object.__setattr__(c, name, by_lower.get(value.lower(), value))
    if isinstance(c.fingerprint, str):
        raise ConfigError("fingerprint takes a tuple of parts, e.g. ('user_agent',)")
    parts = tuple(p.lower() if isinstance(p, str) else p for p in c.fingerprint)
    object.__setattr__(c, "fingerprint", parts)
    idle = c.idle_timeout
    if not isinstance(idle, int | float) or isinstance(idle, bool):
        raise ConfigError("idle_timeout must be a number of seconds")
    if c.absolute_timeout is None:
        object.__setattr__(c, "absolute_timeout", max(12 * 3600.0, float(idle)))
    if c.touch_threshold is None:
        object.__setattr__(c, "touch_threshold", min(60.0, idle / 4))


def _validate(c: Config) -> None:
    if not _COOKIE_NAME.fullmatch(c.cookie_name) or c.cookie_name.isdigit():
        raise ConfigError(
            f"cookie_name {c.cookie_name!r} must be a non-numeric RFC 6265 token "
            "(letters, digits and !#$%&'*+-^_`|~)"
        )
    for name in ("cookie_path", "cookie_domain"):
        value = getattr(c, name)
        if value is not None and (_ATTR_FORBIDDEN.search(value) or not value.isascii()):
            raise ConfigError(f"{name} must be ASCII without ';', ',', control characters or NUL")
    if c.cookie_domain is not None and not _DOMAIN.fullmatch(c.cookie_domain):
        raise ConfigError(
            f"cookie_domain {c.cookie_domain!r} must be a host name (letters, digits, '-' "
            "and '.'), e.g. 'example.com'"
        )
    if not c.cookie_path.startswith("/"):
        raise ConfigError("cookie_path must start with '/'")
    if not 32 <= c.id_bytes <= 64:
        raise ConfigError("id_bytes must be between 32 (256 bits) and 64")
    # name=value; Path; Domain; Max-Age; Expires; Secure; HttpOnly; SameSite; Partitioned
    longest = len(c.cookie_name) + c.id_bytes * 2 + len(c.cookie_path) + len(c.cookie_domain or "")
    if longest + _ATTRIBUTES > _COOKIE_LIMIT:
        raise ConfigError(
            f"the session cookie would be over the {_COOKIE_LIMIT}-byte limit browsers keep; "
            "shorten cookie_name, cookie_path or cookie_domain"
        )
    if c.cookie_samesite not in ("Lax", "Strict", "None", None):
        raise ConfigError("cookie_samesite must be 'Lax', 'Strict', 'None' or None")
    if c.cookie_samesite == "None" and not c.cookie_secure:
        raise ConfigError("cookie_samesite='None' requires cookie_secure=True (browsers refuse it)")
    if c.cookie_partitioned and not c.cookie_secure:
        raise ConfigError("cookie_partitioned requires cookie_secure=True")
    if c.cookie_name.startswith(("__Secure-", "__Host-")) and not c.cookie_secure:
        raise ConfigError("a __Secure- or __Host- cookie name requires cookie_secure=True")
    if c.host_prefixed and (c.cookie_domain or c.cookie_path != "/"):
        raise ConfigError("a __Host- cookie must have cookie_path='/' and no cookie_domain")
    _positive(c, "idle_timeout", "absolute_timeout", "lock_lease", "max_bytes")
    _non_negative(
        c, "touch_threshold", "lock_wait", "regenerate_grace", "cookie_lifetime", "database_ttl"
    )
    _positive(c, "lock_backoff", "lock_backoff_max")
    if c.touch_threshold >= c.idle_timeout:
        raise ConfigError("touch_threshold must be shorter than idle_timeout")
    if c.gc_probability < 0 or c.gc_divisor <= 0:
        raise ConfigError("gc_probability must be >= 0 and gc_divisor > 0")
    if c.lock_mode not in ("exclusive", "optimistic", "none"):
        raise ConfigError("lock_mode must be 'exclusive', 'optimistic' or 'none'")
    if c.conflict_resolution not in ("raise", "mine", "theirs"):
        raise ConfigError("conflict_resolution must be 'raise', 'mine' or 'theirs'")
    if not set(c.fingerprint) <= {"user_agent", "ip"}:
        raise ConfigError("fingerprint parts must be among 'user_agent' and 'ip'")
    if not 0 < c.ipv4_prefix <= 32 or not 0 < c.ipv6_prefix <= 128:
        raise ConfigError("ipv4_prefix must be 1..32 and ipv6_prefix 1..128")
    if c.fingerprint_policy not in ("reset", "flag"):
        raise ConfigError("fingerprint_policy must be 'reset' or 'flag'")


def _positive(c: Config, *names: str) -> None:
    for name in names:
        if not getattr(c, name) > 0:
            raise ConfigError(f"{name} must be greater than 0")


def _non_negative(c: Config, *names: str) -> None:
    for name in names:
        if not getattr(c, name) >= 0:
            raise ConfigError(f"{name} must be 0 or more")
