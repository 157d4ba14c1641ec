"""``cookie://?keys=env:VARIABLE``: the whole session in its cookie, encrypted and signed.

Nothing is kept on the server: the cookie carries the session's id, its stored record (data
and header: created, timeouts, fingerprint) and its idle deadline, sealed with AES-256-GCM
under a list of keys (:class:`coatcheck.crypto.Keyring`: sealed under the newest, opened
under any, each value naming its key). The deadline and the header travel inside the seal,
so an old cookie replayed after its expiry is refused by the engine as a stored record
would be. A cookie that does not open (altered, truncated, sealed under a key no longer
listed, not ours at all) gives a fresh session, never an exception.

The keys come from an environment variable (``keys=env:NAME``: base64url keys of at least
32 bytes, newest first, separated by commas), never from the URL. Options:

- ``revocations=<store URL>`` (percent-encoded): a server store that lists the ids of
  sessions logged out (destroyed, regenerated away) until they would have expired anyway;
  each load then asks it once. Without it a copy of a logged-out cookie stays valid until
  its expiry, as with every cookie session.
- ``cookie_limit`` (default and most 4096): bytes of the whole Set-Cookie line (name, value
  and attributes); a session sealed past it raises :class:`~coatcheck.errors.CookieTooLarge`.
- ``revoke_for`` (seconds, default 31 days): how long :meth:`CookieStore.destroy`, called
  with a key alone (a logout from elsewhere), keeps the key revoked.

How it plugs in: a store with ``client_side = True`` gives each request a view of its own
(:meth:`CookieStore.open_request`), a Store over the one record the cookie carried; the
session layer runs the request's operations against it and sends the cookie it sealed at
the last write or touch. There are no locks between requests of one browser (the browser
keeps whichever cookie came last) and no list of sessions on the server: ``count()`` and
``scan()`` raise NotImplementedError. See docs/stores/cookie.md.

``_async.py`` is the source of the store's I/O (the calls to its revocation list), ``_sync.py``
its generated twin (``make unasync``); the seal, the limits, each request's decisions and the
URL are ``_common.py``'s.
"""

from __future__ import annotations

from ._async import AsyncCookieStore, AsyncCookieView
from ._common import COOKIE_LIMIT, PURPOSE, REVOKE_FOR, _parse, seal, unseal
from ._sync import CookieStore, CookieView

SCHEMES: tuple[str, ...] = ("cookie",)
EXTRA = ""

__all__ = [
    "COOKIE_LIMIT",
    "EXTRA",
    "PURPOSE",
    "REVOKE_FOR",
    "SCHEMES",
    "AsyncCookieStore",
    "AsyncCookieView",
    "CookieStore",
    "CookieView",
    "open_async",
    "open_sync",
    "seal",
    "unseal",
]


def open_sync(url: str) -> CookieStore:
    from .. import open_store  # the revocation list is any store, opened by URL

    s = _parse(url)
    revocations = open_store(s.revocations) if s.revocations else None
    return CookieStore(
        s.keys, revocations=revocations, cookie_limit=s.cookie_limit, revoke_for=s.revoke_for
    )


def open_async(url: str) -> AsyncCookieStore:
    from .. import open_async_store

    s = _parse(url)
    revocations = open_async_store(s.revocations) if s.revocations else None
    return AsyncCookieStore(
        s.keys, revocations=revocations, cookie_limit=s.cookie_limit, revoke_for=s.revoke_for
    )
