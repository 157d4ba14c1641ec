"""The ``coatcheck`` command on SQLite, Redis and PostgreSQL: output, exit codes, effects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from coatcheck import Client, Config, SessionManager, codec, open_store, record
from coatcheck.cli import main
from coatcheck.ids import new_id, storage_key
from coatcheck.stores.base import Store

from .services import require
from .stores import CASES, StoreCase

CASE = {c.name: c for c in CASES}
URL_KINDS = ["sqlite", "redis", "postgresql"]
UNREACHABLE = "redis://127.0.0.1:1/0?connect_timeout=0.5"


def _url_for(case: StoreCase, tmp_path: Path) -> Iterator[str]:
    endpoint = case.endpoint()
    if endpoint is not None:
        require(*endpoint, case.name)
    url = case.make_url(tmp_path)
    yield url
    if case.cleanup is not None:
        case.cleanup(url)


@pytest.fixture(params=URL_KINDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL in a namespace of its own, with its schema (``coatcheck init``) made."""
    for made in _url_for(CASE[request.param], tmp_path):
        assert main(["init", "--store", made]) == 0
        yield made


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL with no schema yet (only ``init`` makes one)."""
    yield from _url_for(CASE[request.param], tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def one_line_failure(code: int, out: str, err: str) -> str:
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("coatcheck: ") and "Traceback" not in err
    return lines[0]


@dataclass
class Filled:
    """What :func:`fill` put in a store, by storage key."""

    alice: list[str]
    bob: list[str]
    anonymous: list[str]
    kept: list[str]  # expired, kept by database_ttl
    corrupt: str

    @property
    def sessions(self) -> set[str]:
        return {*self.alice, *self.bob, *self.anonymous, *self.kept}


def fill(url: str) -> Filled:
    """Sessions logged in through the session layer (so users' indexes exist), two that
    expired but are kept, and one record that is not ours."""
    with open_store(url) as store:
        manager = SessionManager(store, Config(gc_probability=0))
        made: dict[str | None, list[str]] = {"alice": [], "bob": [], None: []}
        for user in ("alice", "alice", "alice", "bob", "bob", None, None):
            s = manager.start(client=Client("pytest"))
            s["cart"] = [user, 1]
            if user is not None:
                s.login(user)
            s.write_close()
            made[user].append(s.storage_key)
        now = time.time()
        kept = [write_record(store, now - 300, retention=600, user="carol") for _ in range(2)]
        corrupt = storage_key(new_id())
        store.write(corrupt, b"not a coatcheck record", now + 600)
    return Filled(made["alice"], made["bob"], made[None], kept, corrupt)


def write_record(
    store: Store, idle_deadline: float, *, retention: float = 0, key: str = "", **fields: Any
) -> str:
    """A session record written straight to the store; its storage key."""
    key = key or storage_key(new_id())
    header = record.Header(created=time.time() - 60, retention=retention or None, **fields)
    data, _ = codec.encode({"n": 1})
    store.write(key, record.pack(header, data), idle_deadline + retention)
    return key


def listed(capsys: pytest.CaptureFixture[str], url: str, *options: str) -> list[dict[str, Any]]:
    result = run_json(capsys, "ls", "--store", url, *options)
    rows: list[dict[str, Any]] = result["sessions"]
    return rows


# --- version, help -----------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"coatcheck {version('coatcheck')}\n", "")


@pytest.mark.parametrize(
    "command", ["", "init", "ls", "show", "rm", "gc", "stats", "migrate", "bench", "demo"]
)
def test_help_is_plain_text(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *command.split(), "--help")
    assert code == 0 and out.startswith("Usage: coatcheck")
    assert "\x1b" not in out and "[bold" not in out and "\b" not in out
    if command:
        assert "--store" in out or command == "migrate"


# --- init, and nothing else creates ------------------------------------------------------


def test_only_init_creates_the_schema(sql_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["ls"], ["stats"], ["gc"], ["show", "ab"], ["rm", "ab"], ["bench"]):
        line = one_line_failure(*run(capsys, *argv, "--store", sql_url))
        assert "no session table yet: run `coatcheck init`" in line
    if sql_url.startswith("sqlite:"):
        assert not Path(sql_url.removeprefix("sqlite:///")).exists()
    assert run(capsys, "init", "--store", sql_url) == (0, "schema ready\n", "")
    assert run(capsys, "init", "--store", sql_url)[0] == 0  # again: nothing to do
    assert run_json(capsys, "stats", "--store", sql_url)["live_sessions"] == 0


def test_init_on_a_store_without_schema(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    expected = "the store answers; it needs no schema\n" if "redis" in url else "schema ready\n"
    assert run(capsys, "init", "--store", url) == (0, expected, "")


# --- ls ----------------------------------------------------------------------------------


def test_ls_pages_through_sessions_only(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    filled = fill(url)
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        page = run_json(capsys, "ls", "--store", url, "--limit", "3", "--offset", str(offset))
        assert len(page["sessions"]) == 3 or page["next_offset"] is None
        seen += [row["key"] for row in page["sessions"]]
        offset, pages = page["next_offset"], pages + 1
    assert len(seen) == len(set(seen)) and set(seen) == filled.sessions  # no index, no corrupt
    assert pages in (3, 4)  # 9 sessions; the last page may hold only records that are not
    code, out, err = run(capsys, "ls", "--store", url, "--limit", "4")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "KEY", "USER", "CREATED", "LAST", "ACCESS", "EXPIRES", "SIZE", "FLAGS"
    ]  # fmt: skip
    assert len(lines) == 5 and "more: coatcheck ls --limit 4 --offset " in err
    for line in lines[1:]:
        shown = line.split()[0]
        assert len(shown) == 12 and any(k.startswith(shown) for k in filled.sessions)
        assert not any(k in line for k in filled.sessions)  # a prefix, never the whole key


def test_ls_filters_by_user_and_expiry(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    filled = fill(url)
    alice = listed(capsys, url, "--user", "alice")
    assert {r["key"] for r in alice} == set(filled.alice)
    assert all(r["user"] == "alice" and r["flags"] == [] for r in alice)
    assert listed(capsys, url, "--user", "nobody") == []
    expired = listed(capsys, url, "--expired")
    assert {r["key"] for r in expired} == set(filled.kept)
    if len(filled.kept) > 1:  # the next page's command keeps the filters
        _, _, err = run(capsys, "ls", "--store", url, "--expired", "--limit", "1")
        assert "more: coatcheck ls --expired --limit 1 --offset 1" in err
    for row in expired:
        assert row["flags"] == ["expired"] and row["expires"] < time.time() < row["expires"] + 600
    second = listed(capsys, url, "--user", "alice", "--limit", "2", "--offset", "2")
    assert len(second) == 1 and second[0]["key"] in filled.alice
    assert run(capsys, "ls", "--store", url, "--user", "nobody")[1] == "no sessions\n"


# --- show, rm ----------------------------------------------------------------------------


def test_show_finds_a_session_by_a_prefix(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    filled = fill(url)
    key = filled.alice[0]
    shown = run_json(capsys, "show", key[:10], "--store", url)
    assert shown["key"] == key and shown["kind"] == "session" and shown["user"] == "alice"
    assert shown["data"] == {"cart": ["alice", 1]} and shown["expired"] is False
    code, out, _ = run(capsys, "show", key.upper()[:12], "--store", url)
    assert code == 0 and "user: alice" in out and '"cart"' in out
    kept = run_json(capsys, "show", filled.kept[0], "--store", url)
    assert kept["expired"] is True and kept["retention"] == 600


def test_show_and_rm_fail_on_unknown_or_ambiguous_keys(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_store(url) as store:
        twins = [write_record(store, time.time() + 600, key="abcd" + c * 60) for c in "01"]
    for command in ("show", "rm"):
        line = one_line_failure(*run(capsys, command, "abcd", "--store", url))
        assert line == "coatcheck: 2 keys start with abcd: give more of the key"
        line = one_line_failure(*run(capsys, command, "f" * 64, "--store", url))
        assert line == f"coatcheck: no record's key starts with {'f' * 64}"
        line = one_line_failure(*run(capsys, command, "not-hex", "--store", url))
        assert "hex digits" in line and "not-hex" not in line
    assert run_json(capsys, "show", "abcd1", "--store", url)["key"] == twins[1]
    with open_store(url) as store:
        assert store.validate_id(twins[0]) and store.validate_id(twins[1])  # rm removed none


def test_rm_one_session_and_a_users_sessions(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    filled = fill(url)
    assert run(capsys, "rm", filled.bob[0][:16], "--store", url) == (
        0,
        "removed 1 session(s)\n",
        "",
    )
    keep = filled.alice[1]
    code, out, _ = run(capsys, "rm", "--user", "alice", "--keep", keep[:16], "--store", url)
    assert (code, out) == (0, "removed 2 session(s)\n")
    with open_store(url) as store:
        assert not store.validate_id(filled.bob[0]) and store.validate_id(filled.bob[1])
        assert [store.validate_id(k) for k in filled.alice] == [False, True, False]
    assert {r["key"] for r in listed(capsys, url, "--user", "alice")} == {keep}
    assert run(capsys, "rm", "--store", url)[0] == 2  # neither KEY nor --user: a usage error
    assert run(capsys, "rm", "--keep", keep, "--store", url)[0] == 2


# --- gc, stats ---------------------------------------------------------------------------


def test_gc_deletes_expired_records(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    filled = fill(url)
    if "redis" in url:
        code, out, _ = run(capsys, "gc", "--store", url)
        assert code == 0 and out.splitlines() == [
            "the store expires sessions itself: nothing to collect",
            "removed 0 expired session(s)",
        ]
        return
    with open_store(url) as store:
        gone = [write_record(store, time.time() - 5) for _ in range(5)]
    assert run(capsys, "gc", "--store", url) == (0, "removed 5 expired session(s)\n", "")
    assert run_json(capsys, "gc", "--store", url) == {"removed": 0}
    with open_store(url) as store:
        assert store.read(gone[0]) is None and store.validate_id(filled.kept[0])


def test_stats_counts_every_kind_of_record(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    fill(url)
    counts = run_json(capsys, "stats", "--store", url)
    assert counts["live_sessions"] == 7 and counts["expired_but_kept"] == 2
    assert counts["index_records"] == 2 and counts["unreadable"] == 1
    assert counts["logged_in_users"] == 2 and counts["locked_now"] == 0
    assert counts["payload_bytes"] > 0
    code, out, _ = run(capsys, "stats", "--store", url)
    assert code == 0 and "live sessions: 7\n" in out and "expired but kept: 2\n" in out


# --- bench, migrate, demo ----------------------------------------------------------------


def test_bench_times_the_cycle_and_cleans_up(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, "bench", "--store", url, "--sessions", "3", "--requests", "20")
    assert result["requests"] == 20 and result["ops_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    with open_store(url) as store:
        assert store.count() == 0  # the sessions it made are gone
    code, out, _ = run(capsys, "bench", "--store", url, "--sessions", "1", "--requests", "2")
    assert code == 0 and "operations/s: " in out and "p99: " in out


def test_migrate_copies_sessions(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    filled = fill(url)
    target = f"sqlite:///{tmp_path}/target.db"
    assert one_line_failure(*run(capsys, "migrate", "--from", url, "--to", target))
    assert main(["init", "--store", target]) == 0
    capsys.readouterr()
    report = run_json(capsys, "migrate", "--from", url, "--to", target)
    assert report["copied"] == report["total"] == 12 and report["skipped"] == 0
    assert {r["key"] for r in listed(capsys, target, "--limit", "100")} == filled.sessions


def test_demo_refuses_plain_http_on_a_public_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--store", f"sqlite:///{tmp_path}/d.db", "--host", "0.0.0.0", "--port", "0"]
    line = one_line_failure(*run(capsys, *argv))
    assert "--plain-http" in line


# --- failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["ls", "stats", "gc", "show ab", "rm ab", "init"])
def test_an_unreachable_store_fails_in_one_line(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_failure(*run(capsys, *command.split(), "--store", UNREACHABLE))
    assert "redis store at 127.0.0.1:1" in line


def test_a_bad_url_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "unknown store URL scheme" in one_line_failure(*run(capsys, "ls", "--store", "x://"))
    monkeypatch.setenv("COATCHECK_STORE", "nosuch://from-env")
    assert "'nosuch'" in one_line_failure(*run(capsys, "stats"))
    code, _, err = run(capsys, "ls", "--limit", "0")
    assert code == 2 and "Invalid value for '--limit'" in err  # click's usage error


def test_ctrl_c_exits_130_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bench.db"
    assert main(["init", "--store", url]) == 0
    run_main = "import sys; from coatcheck.cli import main; sys.exit(main())"
    argv = [sys.executable, "-c", run_main, "bench", "--store", url]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [*argv, "--sessions", "5", "--requests", "100000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    with open_store(url) as store:
        while store.count() == 0 and proc.poll() is None:  # wait until it is timing
            time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and b"Traceback" not in err
    with open_store(url) as store:
        assert store.count() == 0  # it still removed the sessions it made


# --- the stores' gc_batches, which `coatcheck gc` drives ----------------------------------

BATCHED = ["sqlite", "file", "postgresql", "mysql"]


@pytest.mark.parametrize("kind", BATCHED)
async def test_gc_batches_yields_each_batch_sync_and_async(kind: str, tmp_path: Path) -> None:
    from coatcheck import open_async_store
    from coatcheck.stores._gc import GC_FIRST

    expired = 1050 if kind == "file" else GC_FIRST + 50  # more than one batch
    for made in _url_for(CASE[kind], tmp_path):
        with open_store(made) as store:
            getattr(store, "create_schema", lambda: None)()
            live = write_record(store, time.time() + 600)
            for _ in range(expired):
                write_record(store, time.time() - 5)
            pending = getattr(store, "gc_pending", None)
            assert pending is None or pending() == expired
            batches = list(store.gc_batches())  # type: ignore[attr-defined]
            assert len(batches) >= 2 and sum(batches) == expired
            for _ in range(expired):
                write_record(store, time.time() - 5)
        async with open_async_store(made) as astore:
            batches = [n async for n in astore.gc_batches()]  # type: ignore[attr-defined]
        assert len(batches) >= 2 and sum(batches) == expired
        with open_store(made) as store:
            assert store.gc() == 0 and store.validate_id(live)
