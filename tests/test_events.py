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
