"""coatcheck: server-side HTTP sessions for Python web apps."""

from .config import Config
from .cookies import CookieAction
from .engine import Client
from .errors import (
    CoatcheckError,
    ConfigError,
    Conflict,
    EncodeError,
    IdCollision,
    LockLost,
    LockTimeout,
    RetryLater,
    SessionClosed,
    SessionConflict,
    SessionGone,
    SessionNotLoaded,
    SessionTooLarge,
    StoreUnavailable,
    VersionMismatch,
)
from .session import AsyncSession, AsyncSessionManager, Session, SessionData, SessionManager
from .stores import AsyncStore, Store, open_async_store, open_store

__all__ = [
    "AsyncSession",
    "AsyncSessionManager",
    "AsyncStore",
    "Client",
    "CoatcheckError",
    "Config",
    "ConfigError",
    "Conflict",
    "CookieAction",
    "EncodeError",
    "IdCollision",
    "LockLost",
    "LockTimeout",
    "RetryLater",
    "Session",
    "SessionClosed",
    "SessionConflict",
    "SessionData",
    "SessionGone",
    "SessionManager",
    "SessionNotLoaded",
    "SessionTooLarge",
    "Store",
    "StoreUnavailable",
    "VersionMismatch",
    "open_async_store",
    "open_store",
]
