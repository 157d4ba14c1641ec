"""Security events: what an operator wants to see when sessions are attacked or misused.

Every event goes to the ``coatcheck.security`` logger (structured: the record carries
``security_event``, ``session_key`` and ``client`` attributes, for a JSON formatter) and to
the handlers given to :func:`subscribe`, in the manner of Django's signals::

    from coatcheck import events

    def alert(event: events.SecurityEvent) -> None:
        if event.kind in ("fingerprint_mismatch", "guessing"):
            metrics.increment(f"sessions.{event.kind}")

    events.subscribe(alert)

An event names its session by the storage key (the SHA-256 of the id, what the store sees),
never by the id itself: a log reader cannot take the session over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("coatcheck.security")

EventKind = Literal[
    "created",  # a new session was first stored
    "regenerated",  # a session was given a new id (login); detail: delete_old, grace
    "destroyed",  # a session was deleted (logout)
    "expired",  # a cookie named a session past its deadline; detail: reason idle|absolute
    "fingerprint_mismatch",  # the client does not match the one the session is bound to
    "duplicate_cookie",  # a request carried the session cookie more than once
    "lock_lost",  # a request's lock lease ran out before its write
    "guessing",  # many unknown or expired ids from one client in a short time
    "login",  # a session was logged in as a user (session.login): a new id
    "logged_out_everywhere",  # a user's other sessions were destroyed; detail: sessions
    "unexpired",  # an expired session's data came back under a new id; detail: was
]
WARNINGS = frozenset({"fingerprint_mismatch", "duplicate_cookie", "lock_lost", "guessing"})


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    kind: EventKind
    session: str | None  # the storage key: SHA-256 hex of the id, never the id
    client: str | None = None  # the client's address, when the web layer knows it
    detail: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


Handler = Callable[[SecurityEvent], None]
_handlers: list[Handler] = []
_lock = threading.Lock()


def subscribe(handler: Handler) -> Callable[[], None]:
    """Call ``handler`` with every event from now on; returns the function that stops it.

    Handlers run in the request that caused the event: keep them quick (queue the work).
    An exception in a handler is logged and never reaches the request.
    """
    with _lock:
        _handlers.append(handler)

    def unsubscribe() -> None:
        with _lock:
            if handler in _handlers:
                _handlers.remove(handler)

    return unsubscribe


def emit(
    kind: EventKind, session: str | None, client: str | None = None, **detail: Any
) -> SecurityEvent:
    """Log the event and pass it to every subscriber."""
    event = SecurityEvent(kind, session, client, detail)
    level = logging.WARNING if kind in WARNINGS else logging.INFO
    if log.isEnabledFor(level):
        short = f" session {session[:12]}" if session else ""
        where = f" from {client}" if client else ""
        extra = "".join(f" {k}={v}" for k, v in detail.items())
        log.log(
            level,
            "security event %s%s%s%s",
            kind,
            short,
            where,
            extra,
            extra={"security_event": kind, "session_key": session, "client": client, **detail},
        )
    with _lock:
        handlers = list(_handlers)
    for handler in handlers:
        try:
            handler(event)
        except Exception:
            log.exception("a security event handler failed (%s)", kind)
    return event


class GuessingDetector:
    """Counts the unknown or expired ids each client presents in a sliding window.

    When a client passes ``threshold`` within ``window`` seconds, one ``guessing`` event is
    emitted, at most one per window per client. Memory is bounded: at
    most ``max_clients`` clients are tracked, the least recently seen forgotten first.
    The ids themselves cost no store write: strict mode adopts none of them.
    """

    def __init__(
        self, threshold: int = 20, window: float = 60.0, max_clients: int = 10_000
    ) -> None:
        if threshold < 1 or window <= 0 or max_clients < 1:
            raise ValueError("threshold and max_clients must be >= 1, window > 0")
        self.threshold, self.window, self.max_clients = threshold, window, max_clients
        self._seen: OrderedDict[str, tuple[deque[float], float]] = OrderedDict()
        self._lock = threading.Lock()

    def unknown_id(self, client: str | None, now: float, session: str | None = None) -> bool:
        """Note one unknown or expired id from ``client``; True when this one raised the
        ``guessing`` event. Requests with no known client address are not counted."""
        if client is None:
            return False
        with self._lock:
            times, reported = self._seen.pop(client, (deque(), float("-inf")))
            self._seen[client] = (times, reported)
            while len(self._seen) > self.max_clients:
                self._seen.popitem(last=False)
            times.append(now)
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) < self.threshold or now - reported < self.window:
                return False
            self._seen[client] = (times, now)
            count = len(times)
        emit("guessing", session, client, count=count, window=self.window)
        return True
