"""The duplicate session cookie check, shared by the adapters' tests (Django's in its process).

A cookie tossed from a sibling subdomain (or set for a deeper path) arrives beside the
victim's own, and may come first (RFC 6265 5.4). Neither is used: the request gets a fresh
session, the victim's session is untouched and works again once the tossed cookie is gone.
"""

from __future__ import annotations

from typing import Any

from coatcheck import Client, events
from tests.web.conformance import UA, Web


def _stored(web: Web, sid: str) -> dict[str, Any] | None:
    s = web.manager.start(sid, client=Client(user_agent=UA), read_only=True)
    return None if s.is_new else dict(s)


def duplicate_cookies_use_none(web: Web) -> None:
    victim, tossed = web.request("GET", "/count").sid(), web.request("GET", "/count").sid()
    assert victim and tossed and victim != tossed
    seen: list[events.SecurityEvent] = []
    stop = events.subscribe(seen.append)
    try:
        both = web.request("GET", "/count", f"{tossed}; session={victim}")  # Cookie: twice
        assert both.status == 200 and both.body == "1"  # a fresh session, not either of them
        assert both.sid() not in (None, victim, tossed)
        assert _stored(web, victim) == {"n": 1} and _stored(web, tossed) == {"n": 1}
        same = web.request("GET", "/count", f"{victim}; session={victim}")
        assert same.body == "2"  # identical duplicates count as one
    finally:
        stop()
    tossing = [e for e in seen if e.kind == "duplicate_cookie"]
    assert len(tossing) == 1 and tossing[0].session is None
    assert web.request("GET", "/count", victim).body == "3"  # the tossed cookie is gone
