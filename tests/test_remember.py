"""remember() and its undo, forget(): the server's timeouts and the cookie agree."""

from __future__ import annotations

from coatcheck import Config, SessionManager
from coatcheck.stores.memory import MemoryStore


def test_forget_undoes_remember_and_sends_a_browser_session_cookie() -> None:
    now = [1_000_000.0]
    config = Config(idle_timeout=600, cookie_lifetime=600)  # persistent cookies by default
    manager = SessionManager(MemoryStore(), config, clock=lambda: now[0])
    s = manager.start(None)
    s["user"] = "ada"
    s.remember(7200)
    s.write_close()
    assert s.cookie_max_age == 7200 and "Max-Age=7200" in str(s.set_cookie_header())
    s = manager.start(s.id)
    s.forget()
    assert not s.remembered and s.idle_timeout == 600 and s.cookie_max_age is None
    s.write_close()
    header = str(s.set_cookie_header())
    assert "Max-Age" not in header and "Expires" not in header  # the old cookie replaced
    sid = s.id
    now[0] += 300
    again = manager.start(sid)  # stored as such: still a browser-session cookie
    assert again["user"] == "ada" and again.cookie_max_age is None
    again.write_close()
    now[0] += 601  # the configured idle timeout holds on the server
    assert manager.start(sid).is_expired


def test_remember_with_the_timeouts_it_has_writes_nothing() -> None:
    """An app that calls remember() on every request ("remember me" kept on) must not turn
    each lazy touch into a full write (nor, when logged in, an update of the user's index)."""
    now = [1_000_000.0]
    store = MemoryStore()
    manager = SessionManager(store, Config(idle_timeout=600), clock=lambda: now[0])
    s = manager.start(None)
    s["user"] = "ada"
    s.remember(7200, 86400)
    s.write_close()
    sid = s.id
    version = store.read(s.storage_key).version  # type: ignore[union-attr]
    now[0] += 5  # within touch_threshold: nothing to touch either
    again = manager.start(sid)
    again.remember(7200, 86400)
    again.write_close()
    assert store.read(s.storage_key).version == version  # type: ignore[union-attr]
    assert again.cookie_max_age is not None and again.cookie_max_age > 7190
    now[0] += 5
    changed = manager.start(sid)
    changed.remember(3600)  # other timeouts: written
    changed.write_close()
    assert store.read(s.storage_key).version == version + 1  # type: ignore[union-attr]
    assert manager.start(sid).idle_timeout == 3600
