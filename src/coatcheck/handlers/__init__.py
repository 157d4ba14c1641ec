"""PHP-shaped save handlers: port a PHP ``SessionHandlerInterface`` class line by line.

Subclass :class:`SessionHandler` (or :class:`AsyncSessionHandler`) with PHP's methods, and
hand its factory to :class:`HandlerStore` (or :class:`AsyncHandlerStore`, which also runs a
blocking handler, in worker threads); the result is a coatcheck store, so locking, strict
mode, expiry and fingerprints come from coatcheck::

    store = HandlerStore(lambda: MyHandler(connect()))
    sessions = SessionManager(store)

See docs/custom-store.md for what the handler is given, how locks work without a
compare-and-set, and when to write a store instead. Like a store, this package imports only
coatcheck's core and ``coatcheck.stores.base``.
"""

from __future__ import annotations

from ._async import AsyncHandlerStore
from ._handler import AsyncSessionHandler, SessionHandler
from ._sync import HandlerStore

__all__ = ["AsyncHandlerStore", "AsyncSessionHandler", "HandlerStore", "SessionHandler"]
