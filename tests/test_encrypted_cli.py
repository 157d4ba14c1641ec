"""``coatcheck reencrypt --store URL``: output, exit codes and effect, on SQLite and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from coatcheck import Config, SessionManager, open_store
from coatcheck.cli import main
from coatcheck.crypto import new_key
from coatcheck.ids import storage_key
from coatcheck.stores.base import Stored
from coatcheck.wrappers import EncryptedStore, RecordCipher

from .services import REDIS_URL, require
from .support import redis as redis_support

VARIABLE = "COATCHECK_TEST_CLI_KEYS"
OLD, NEW = new_key(), new_key()


def _with(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


@pytest.fixture(params=["sqlite", "redis"])
def plain_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL without encryption options (the tests add them)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/sessions.db"
        return
    require("127.0.0.1", 6379, "redis")
    url = _with(REDIS_URL, f"prefix=cc_{uuid.uuid4().hex[:12]}:")
    yield url
    redis_support.drop_namespace(url)


def sessions(url: str, count: int) -> list[str]:
    with open_store(url) as store:
        m = SessionManager(store, Config(gc_probability=0, cookie_secure=True))
        sids = []
        for i in range(count):
            s = m.start()
            s["n"] = i
            s.write_close()
            sids.append(s.id)
    return sids


def test_reencrypt_moves_every_session_under_the_newest_key(
    plain_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _with(plain_url, f"encrypt=env:{VARIABLE}")
    monkeypatch.setenv(VARIABLE, OLD)
    sids = sessions(url, 3)
    monkeypatch.setenv(VARIABLE, f"{NEW},{OLD}")
    assert main(["reencrypt", "--store", url]) == 0
    assert capsys.readouterr().out == "re-encrypted 3 session(s) under the newest key\n"
    assert main(["reencrypt", "--store", url]) == 0  # a second run has nothing to do
    assert "re-encrypted 0 session(s)" in capsys.readouterr().out
    monkeypatch.setenv(VARIABLE, NEW)  # the old key is gone: everything still reads
    with open_store(url) as store:
        assert isinstance(store, EncryptedStore)
        newest = RecordCipher([NEW])
        m = SessionManager(store, Config(gc_probability=0))
        for i, sid in enumerate(sids):
            raw = store.inner.read(storage_key(sid))
            assert isinstance(raw, Stored) and newest.is_current(raw.payload)
            s = m.start(sid)
            assert s["n"] == i
            s.abort()


def test_reencrypt_takes_the_store_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/s.db?encrypt=env:{VARIABLE}"
    monkeypatch.setenv(VARIABLE, OLD)
    sessions(url, 1)
    monkeypatch.setenv(VARIABLE, f"{NEW},{OLD}")
    monkeypatch.setenv("COATCHECK_STORE", url)
    assert main(["reencrypt"]) == 0
    assert "re-encrypted 1 session(s)" in capsys.readouterr().out


def one_line_failure(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coatcheck: ") and "Traceback" not in err
    return lines[0]


def test_reencrypt_without_keys_fails_in_one_line(
    plain_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reencrypt", "--store", plain_url]) == 2
    assert "add ?encrypt=env:VARIABLE" in one_line_failure(capsys)
    monkeypatch.delenv(VARIABLE, raising=False)
    assert main(["reencrypt", "--store", _with(plain_url, f"encrypt=env:{VARIABLE}")]) == 2
    assert f"{VARIABLE} holds no encryption keys" in one_line_failure(capsys)
    monkeypatch.setenv(VARIABLE, "too-short")
    assert main(["reencrypt", "--store", _with(plain_url, f"encrypt=env:{VARIABLE}")]) == 2
    line = one_line_failure(capsys)
    assert "key 1 is" in line and "too-short" not in line


@pytest.mark.parametrize(
    "url",
    [
        "nosuch://x?encrypt=env:" + VARIABLE,
        "redis://127.0.0.1:1/0?connect_timeout=0.5&encrypt=env:" + VARIABLE,
        "sqlite:///x.db?encrypt=" + "inline-key-value",
    ],
    ids=["unknown-scheme", "unreachable", "key-in-url"],
)
def test_reencrypt_fails_in_one_line_on_a_bad_url_or_unreachable_store(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(VARIABLE, NEW)
    assert main(["reencrypt", "--store", url]) == 2
    line = one_line_failure(capsys)
    assert NEW not in line and "inline-key-value" not in line


def test_init_creates_the_schema_through_the_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(VARIABLE, NEW)
    db = tmp_path / "fresh.db"
    assert main(["init", "--store", f"sqlite:///{db}?encrypt=env:{VARIABLE}"]) == 0
    assert "schema ready" in capsys.readouterr().out and db.exists()
