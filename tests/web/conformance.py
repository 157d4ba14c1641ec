"""The web conformance scenarios: one list, run against every adapter.

Each adapter's test module builds an app with the routes below (the same behaviour in each
framework's own idiom) and a :class:`Web` that sends it requests; :data:`SCENARIOS` then
checks the behaviour every adapter must share. Routes:

- ``GET /count``: ``n += 1``, answers ``n``; ``GET /none``: never touches the session
- ``GET /peek``: a read-only route, answers ``n``
- ``GET /early``: ``n += 1``, ``write_close()``, answers ``free`` when the lock is given back
- ``POST /login``: ``user = "ada"``, regenerate with a 30 s grace window
- ``POST /logout``: destroy; ``POST /clear``: remove every key (an emptied session)
- ``GET /fail``: ``n = 999`` and a 500 answer; ``GET /bad``: stores a set (an app bug)
- ``GET /cached``: reads ``n``, answers with its own ``Cache-Control: public, max-age=60``

The apps are configured with ``MIGRATE`` as their migrate hook and ``gc_probability=0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from coatcheck import Client, SessionManager, ids
from coatcheck.locks import new_token
from coatcheck.stores.base import LOCKED, LockRequest

UA = "conformance"
LEGACY = "legacy-token"  # a cookie of the store being migrated from


def lock_free(manager: SessionManager, sid: str) -> bool:
    """Whether the session's lock is free (taken and given back at once)."""
    key, token = ids.storage_key(sid), new_token()
    if manager.store.read(key, LockRequest(token, 5)) is LOCKED:
        return False
    manager.store.release(key, token)
    return True


def migrate(cookie: str) -> Mapping[str, Any] | None:
    """The migrate hook every conformance app uses: one old session, with n = 41."""
    return {"n": 41} if cookie == LEGACY else None


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: str
    cookies: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None

    def session_cookie(self) -> str | None:
        """The Set-Cookie line for the session cookie, if any."""
        for line in self.cookies:
            if line.startswith("session="):
                return line
        return None

    def sid(self) -> str | None:
        line = self.session_cookie()
        return None if line is None else line.split(";", 1)[0].split("=", 1)[1]


class Web(Protocol):
    """An adapter under test: sends one request with the given session cookie."""

    manager: SessionManager  # a sync manager on the app's store, for checks and lock holders

    def request(self, method: str, path: str, cookie: str | None = None) -> Reply: ...


def _start(web: Web) -> str:
    reply = web.request("GET", "/count")
    assert reply.status == 200 and reply.body == "1", (reply.status, reply.body)
    sid = reply.sid()
    assert sid
    return sid


def _stored(web: Web, sid: str) -> dict[str, Any] | None:
    s = web.manager.start(sid, client=Client(user_agent=UA), read_only=True)
    return None if s.is_new else dict(s)


def cookie_flags(web: Web) -> None:
    reply = web.request("GET", "/count")
    line = reply.session_cookie()
    assert line is not None
    attrs = {a.strip().split("=")[0].lower() for a in line.split(";")[1:]}
    assert {"path", "secure", "httponly", "samesite"} <= attrs, line
    assert "samesite=lax" in line.lower()
    sid = reply.sid()
    again = web.request("GET", "/count", sid)
    assert again.body == "2" and again.session_cookie() is None  # the cookie is not resent


def lazy_load(web: Web) -> None:
    reply = web.request("GET", "/none")
    assert reply.status == 200 and reply.session_cookie() is None
    assert "cookie" not in (reply.header("Vary") or "").lower()
    sid = _start(web)
    untouched = web.request("GET", "/none", sid)
    assert untouched.session_cookie() is None and _stored(web, sid) == {"n": 1}


def read_only(web: Web) -> None:
    sid = _start(web)
    holder = web.manager.start(sid, client=Client(user_agent=UA))  # holds the lock
    try:
        peek = web.request("GET", "/peek", sid)  # no lock needed: not blocked
    finally:
        holder.abort()
    assert peek.status == 200 and peek.body == "1" and peek.session_cookie() is None


def early_release(web: Web) -> None:
    sid = _start(web)
    reply = web.request("GET", "/early", sid)
    assert reply.body == "free" and _stored(web, sid) == {"n": 2}


def errors_become_statuses(web: Web) -> None:
    sid = _start(web)
    holder = web.manager.start(sid, client=Client(user_agent=UA))
    try:
        busy = web.request("GET", "/count", sid)
    finally:
        holder.abort()
    assert busy.status == 503 and busy.header("Retry-After") == "1"
    assert web.request("GET", "/count", sid).body == "2"  # nothing was lost or left locked


def app_bugs_propagate(web: Web) -> None:
    sid = _start(web)
    bug = web.request("GET", "/bad", sid)
    assert bug.status == 500  # the framework's own error page, not a 503/409
    assert web.request("GET", "/count", sid).body == "2"  # the lock was given back


def cache_headers(web: Web) -> None:
    reply = web.request("GET", "/count")
    assert reply.header("Cache-Control") == "private, no-store"
    assert "cookie" in (reply.header("Vary") or "").lower()
    own = web.request("GET", "/cached", reply.sid())
    assert own.header("Cache-Control") == "public, max-age=60"  # the app's own is kept
    assert "cookie" in (own.header("Vary") or "").lower()


def regenerate_with_grace(web: Web) -> None:
    old = _start(web)
    login = web.request("POST", "/login", old)
    new = login.sid()
    assert login.status == 200 and new and new != old
    assert _stored(web, new) == {"n": 1, "user": "ada"}
    late = web.request("GET", "/count", old)  # an in-flight request on the old id
    assert late.status == 200 and late.body == "2"


def destroy(web: Web) -> None:
    sid = _start(web)
    out = web.request("POST", "/logout", sid)
    line = out.session_cookie()
    assert line is not None and "max-age=0" in line.lower()
    assert _stored(web, sid) is None


def emptied_session(web: Web) -> None:
    sid = _start(web)
    out = web.request("POST", "/clear", sid)
    line = out.session_cookie()
    assert line is not None and "max-age=0" in line.lower()
    assert _stored(web, sid) is None


def migration(web: Web) -> None:
    reply = web.request("GET", "/count", LEGACY)
    assert reply.body == "42"
    sid = reply.sid()
    assert sid and sid != LEGACY and ids.is_well_formed(sid, web.manager.config.id_bytes)
    assert _stored(web, sid) == {"n": 42}


def failure_discards_changes(web: Web) -> None:
    sid = _start(web)
    failed = web.request("GET", "/fail", sid)
    assert failed.status == 500
    assert _stored(web, sid) == {"n": 1}
    assert web.request("GET", "/count", sid).body == "2"


SCENARIOS: dict[str, Callable[[Web], None]] = {
    f.__name__: f
    for f in (
        cookie_flags,
        lazy_load,
        read_only,
        early_release,
        errors_become_statuses,
        app_bugs_propagate,
        cache_headers,
        regenerate_with_grace,
        destroy,
        emptied_session,
        migration,
        failure_discards_changes,
    )
}
