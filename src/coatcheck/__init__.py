"""coatcheck: server-side HTTP sessions for Python web apps."""

from .config import Config
from .cookies import CookieAction
from .engine import Client
from .errors import (
    CoatcheckError,
    ConfigError,
    EncodeError,
    LockLost,
    LockTimeout,
    SessionClosed,
    SessionConflict,
    SessionTooLarge,
    StoreUnavailable,
)
from .session import AsyncSession, AsyncSessionManager, Session, SessionManager
from .stores import AsyncStore, Store, open_async_store, open_store

__all__ = [
    "AsyncSession",
    "AsyncSessionManager",
    "AsyncStore",
    "Client",
    "CoatcheckError",
    "Config",
    "ConfigError",
    "CookieAction",
    "EncodeError",
    "LockLost",
    "LockTimeout",
    "Session",
    "SessionClosed",
    "SessionConflict",
    "SessionManager",
    "SessionTooLarge",
    "Store",
    "StoreUnavailable",
    "open_async_store",
    "open_store",
]
