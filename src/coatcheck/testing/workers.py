"""Code run in child processes by the concurrency tests (importable under spawn)."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection

from coatcheck import Config, SessionManager, open_store


def increment(url: str, sid: str, times: int) -> None:
    store = open_store(url)
    manager = SessionManager(store, Config(gc_probability=0, lock_wait=60, lock_lease=10))
    for _ in range(times):
        with manager.start(sid) as s:
            s["n"] += 1
    store.close()


def hold_lock(url: str, sid: str, lease: float, ready: Connection) -> None:
    """Take the session's lock, say so, then hang until killed."""
    manager = SessionManager(open_store(url), Config(gc_probability=0, lock_lease=lease))
    s = manager.start(sid)
    s["holder"] = os.getpid()
    ready.send("locked")
    time.sleep(120)


def hold_then_write(url: str, sid: str, lease: float, channel: Connection) -> None:
    """Take the lock, wait (frozen by the parent) past the lease, then try to write.

    Sends "locked", then on "write" answers "written" or the name of the error raised.
    """
    manager = SessionManager(open_store(url), Config(gc_probability=0, lock_lease=lease))
    s = manager.start(sid)
    s["holder"] = os.getpid()
    channel.send("locked")
    assert channel.recv() == "write"
    try:
        s.write_close()
    except Exception as e:
        channel.send(type(e).__name__)
    else:
        channel.send("written")
