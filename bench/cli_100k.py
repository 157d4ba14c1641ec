"""Wall times of ``coatcheck ls``, ``ls --expired``, ``stats`` and ``gc`` on 100k sessions.

``python -m bench.cli_100k [sqlite|postgresql ...] [--sessions N]`` (default: both stores,
N = 100 000). For each store it writes N records through ``store.write`` with real session
payloads (``record.pack`` of a header and encoded data, as the session layer writes them):

- 90%: live (idle deadline 24 minutes ahead), written with ``database_ttl`` 600 s;
- 5%: expired but kept (idle deadline 5 minutes ago, kept 10 minutes): ``ls --expired``
  lists them;
- 5%: expired past their retention too: ``gc`` deletes them.

Then it runs each command once as a separate process (the installed ``coatcheck`` entry
point, output to a pipe, so plain text) and reports its wall time, start-up included. The
servers are the tests' (``COATCHECK_TEST_POSTGRES``); SQLite works in a temporary
directory; the PostgreSQL table is dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coatcheck import codec, open_store, record
from coatcheck.ids import new_id, storage_key
from coatcheck.stores.base import Store
from tests.support.postgresql import drop_namespace

from .common import namespaced

POSTGRES = os.environ.get("COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
RETENTION = 600.0
COMMANDS = [["ls"], ["ls", "--expired"], ["stats"], ["gc"]]
COATCHECK = str(Path(sys.executable).with_name("coatcheck"))


def payload(i: int, now: float) -> bytes:
    user = f"user{i % 5000}" if i % 3 == 0 else None
    header = record.Header(created=now - 600, user=user, retention=RETENTION)
    data, _ = codec.encode({"user_id": i, "cart": [i, i + 1], "csrf": "x" * 32})
    return record.pack(header, data)


def deadline(i: int, now: float) -> float:
    """The stored expires_at: idle deadline plus the retention."""
    if i % 20 == 0:
        return now - 300 - RETENTION - 1  # expired past its retention: gc's
    if i % 20 == 1:
        return now - 300 + RETENTION  # expired, still kept
    return now + 1440 + RETENTION


def fill(store: Store, n: int) -> float:
    now, started = time.time(), time.perf_counter()

    def write(i: int) -> None:
        store.write(storage_key(new_id()), payload(i, now), deadline(i, now))

    workers = 1 if "sqlite" in type(store).__name__.lower() else 8
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(write, range(n), chunksize=500):
            pass
    return time.perf_counter() - started


def timed(url: str, argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [COATCHECK, *argv, "--store", url], capture_output=True, text=True, check=True
    )
    took = time.perf_counter() - started
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return took, last


def run(name: str, url: str, n: int) -> None:
    subprocess.run([COATCHECK, "init", "--store", url], check=True, capture_output=True)
    with open_store(url) as store:
        took = fill(store, n)
    print(f"{name}: wrote {n} records in {took:.1f} s")
    for argv in COMMANDS:
        seconds, last = timed(url, argv)
        print(f"  coatcheck {' '.join(argv):<14} {seconds:6.2f} s   ({last})")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_100k")
    parser.add_argument("stores", nargs="*", default=["sqlite", "postgresql"])
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args(argv)
    for name in args.stores:
        if name == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                run(name, f"sqlite:///{tmp}/sessions.db", args.sessions)
        elif name == "postgresql":
            url = namespaced(POSTGRES, "table")
            try:
                run(name, url, args.sessions)
            finally:
                drop_namespace(url)
        else:
            parser.error(f"unknown store {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
