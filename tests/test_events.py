"""Security events: the hook, the log record and the guessing detector."""

from __future__ import annotations

import logging

import pytest

from coatcheck import events
from coatcheck.events import GuessingDetector, SecurityEvent


@pytest.fixture
def seen() -> list[SecurityEvent]:
    got: list[SecurityEvent] = []
    stop = events.subscribe(got.append)
    yield got
    stop()


def test_subscribers_get_events_and_a_failing_one_is_contained(
    seen: list[SecurityEvent], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: SecurityEvent) -> None:
        raise RuntimeError("handler bug")

    stop = events.subscribe(broken)
    with caplog.at_level(logging.INFO, logger="coatcheck.security"):
        events.emit("destroyed", "ab" * 32, "203.0.113.9")
    stop()
    assert [(e.kind, e.session, e.client) for e in seen] == [
        ("destroyed", "ab" * 32, "203.0.113.9")
    ]
    record = next(r for r in caplog.records if getattr(r, "security_event", None))
    assert record.security_event == "destroyed" and record.session_key == "ab" * 32  # type: ignore[attr-defined]
    assert record.levelno == logging.INFO
    assert any("handler failed" in r.getMessage() for r in caplog.records)
    events.emit("created", None)
    assert len(seen) == 2  # the broken handler was removed, the other still runs


def test_warnings_are_logged_as_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="coatcheck.security"):
        events.emit("fingerprint_mismatch", "cd" * 32, None, policy="reset")
    record = caplog.records[-1]
    assert record.levelno == logging.WARNING and record.policy == "reset"  # type: ignore[attr-defined]
    assert "cdcdcdcdcdcd" in record.getMessage() and "cd" * 32 not in record.getMessage()


def test_guessing_is_reported_once_per_window(seen: list[SecurityEvent]) -> None:
    detector = GuessingDetector(threshold=3, window=10.0)
    assert [detector.unknown_id("198.51.100.1", t) for t in (0, 1, 2, 3, 4)] == [
        False,
        False,
        True,
        False,
        False,
    ]
    assert not detector.unknown_id("198.51.100.2", 5)  # another client counts on its own
    assert not detector.unknown_id(None, 5)  # no address: not counted
    assert detector.unknown_id("198.51.100.1", 12.5)  # a new window, still guessing
    guesses = [e for e in seen if e.kind == "guessing"]
    assert [e.client for e in guesses] == ["198.51.100.1"] * 2
    assert guesses[0].detail == {"count": 3, "window": 10.0}


def test_slow_unknown_ids_are_not_guessing(seen: list[SecurityEvent]) -> None:
    detector = GuessingDetector(threshold=3, window=10.0)
    assert not any(detector.unknown_id("198.51.100.1", t * 6.0) for t in range(20))
    assert seen == []


def test_guessing_memory_is_bounded() -> None:
    detector = GuessingDetector(threshold=2, window=60.0, max_clients=2)
    detector.unknown_id("a", 0)
    detector.unknown_id("b", 0)
    detector.unknown_id("c", 0)  # "a" is forgotten
    assert not detector.unknown_id("a", 1)  # counts from 1 again
    assert detector.unknown_id("c", 1)
    with pytest.raises(ValueError):
        GuessingDetector(threshold=0)


# --- the events a session's life raises, through the public API ---------------------------


def test_a_sessions_life_raises_its_events(seen: list[SecurityEvent]) -> None:
    from coatcheck import Client, Config, SessionManager, ids
    from coatcheck.errors import LockLost
    from coatcheck.stores.memory import MemoryStore

    now = [1_000_000.0]
    manager = SessionManager(
        MemoryStore(), Config(idle_timeout=600, lock_lease=5), clock=lambda: now[0]
    )
    ada = Client(user_agent="firefox", ip="192.0.2.7")
    s = manager.start(None, client=ada)
    s["user"] = "ada"
    s.write_close()
    first = s.id
    s = manager.start(first, client=ada)
    s.regenerate_id()
    s.write_close()
    second = s.id
    assert [(e.kind, e.session, e.client) for e in seen] == [
        ("created", ids.storage_key(first), "192.0.2.7"),
        ("regenerated", ids.storage_key(first), "192.0.2.7"),
        ("created", ids.storage_key(second), "192.0.2.7"),
    ]
    raw = {first, second}
    seen.clear()

    held = manager.start(second, client=ada)
    held["x"] = 1
    now[0] += 6  # the lease runs out; another request takes the session
    other = manager.start(second, client=ada)
    with pytest.raises(LockLost):
        held.write_close()
    other.destroy()
    assert [e.kind for e in seen] == ["lock_lost", "destroyed"]
    seen.clear()

    def fresh() -> str:
        s = manager.start(None, client=ada)
        s["n"] = 1
        s.write_close()
        raw.add(s.id)
        return s.id

    third = fresh()
    stranger = manager.start(third, client=Client(user_agent="curl", ip="198.51.100.9"))
    assert stranger.is_new and stranger.is_bad_hash
    stranger.abort()
    fourth = fresh()
    now[0] += 601
    assert manager.start(fourth, client=ada).is_expired
    kinds = [(e.kind, dict(e.detail)) for e in seen]
    assert kinds == [
        ("created", {}),
        ("fingerprint_mismatch", {"policy": "reset"}),
        ("created", {}),
        ("expired", {"reason": "idle"}),
    ]
    for event in seen:  # the hashed key only, never the id
        assert event.session not in raw and all(r not in repr(event) for r in raw)


def test_many_unknown_ids_from_one_client_raise_one_guessing_event(
    seen: list[SecurityEvent],
) -> None:
    from coatcheck import Client, SessionManager, ids
    from coatcheck.stores.memory import MemoryStore

    store = MemoryStore()
    manager = SessionManager(store)
    prober = Client(user_agent="bot", ip="203.0.113.50")
    for _ in range(25):
        s = manager.start(ids.new_id(), client=prober)
        assert s.is_new
        s.abort()
    assert [e.kind for e in seen] == ["guessing"]
    assert seen[0].client == "203.0.113.50" and seen[0].detail["count"] == 20
    assert list(store.scan()) == []  # no store writes for the guesses
