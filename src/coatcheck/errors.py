"""The exceptions coatcheck raises.

Each message is safe to log: it never holds a raw session id or a credential.
"""

from __future__ import annotations


class CoatcheckError(Exception):
    """Base class of every coatcheck error."""


class ConfigError(CoatcheckError, ValueError):
    """An option is invalid; raised once, at start-up."""


class RetryLater(CoatcheckError):
    """Nothing wrong with the request: try it again later (HTTP 503 + ``Retry-After``).

    ``retry_after`` is the suggested wait in seconds.
    """

    retry_after = 1


class StoreUnavailable(RetryLater):
    """The store could not be reached or failed; the request should get a 503."""

    retry_after = 5


class LockTimeout(RetryLater):
    """The session's lock was still held by another request when the lock wait ran out."""


class Conflict(CoatcheckError):
    """Another request changed the session meanwhile; nothing was written (HTTP 409)."""


class LockLost(Conflict):
    """This request's lease on the session lock expired and another request may have taken it.

    Nothing was written: the fencing check refused the write.
    """


class SessionGone(Conflict):
    """The session was destroyed by another request (a logout elsewhere) while this one had
    it open; this request's changes were not written, and the record was not recreated."""


class SessionConflict(Conflict):
    """Optimistic mode: another request changed the same keys of this session meanwhile."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        super().__init__(
            f"session changed concurrently on {len(keys)} key(s): {', '.join(sorted(keys)[:10])}"
        )


class SessionTooLarge(CoatcheckError):
    """The encoded session exceeds ``max_bytes``; nothing was written."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"encoded session is {size} bytes, over the max_bytes limit of {limit}")


class CookieTooLarge(SessionTooLarge):
    """``cookie://``: the session, sealed into its cookie, would be over what browsers keep
    (name, value and attributes); nothing was written and no cookie is sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.args = (
            f"the session cookie would be {size} bytes (name, sealed session and attributes), "
            f"over the {limit}-byte limit browsers keep; store less in the session (an id to "
            "look things up by, not the things) or use a server-side store (sqlite://, "
            "redis://, ...)",
        )


class EncodeError(CoatcheckError, TypeError):
    """A session value cannot be stored as JSON without changing it."""


class IdCollision(CoatcheckError):
    """A new session could not be stored: every id the store's ``create_id`` gave was in use.

    With random ids this does not happen; a ``create_id`` that repeats itself (a custom store
    returning a fixed or poorly random id) does. Nothing was written.
    """


class SessionClosed(CoatcheckError):
    """The session was already written or closed; start a new one to change it."""


class SessionNotLoaded(CoatcheckError, RuntimeError):
    """The app used a session that must be loaded first (async: ``await load_session``),
    or that its route opted out of."""


class VersionMismatch(CoatcheckError):
    """Store-level: a conditional write found a different version than expected.

    Stores raise it; the session layer turns it into a merge, a retry or SessionConflict.
    """


class InvalidToken(CoatcheckError):
    """A bearer token was refused (HTTP 401): malformed, tampered, expired, revoked or reused.

    ``reason`` is a short phrase safe to send back (RFC 6750 ``error_description``) and to
    log: it never holds the token or any part of it.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"token refused: {reason}")


class TokenReused(InvalidToken):
    """A refresh token that was already exchanged came back: its whole family is revoked."""
