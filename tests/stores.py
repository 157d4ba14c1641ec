"""The stores the conformance suite runs against. Adding a store is one entry here.

Each entry builds a URL in a namespace of its own for one test (a temp dir, a table, a key
prefix), says which server it needs, and how to clean up. Entries whose store module does
not exist yet are left out, so a store lands together with its conformance run.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .services import MEMCACHED_URL, MYSQL_URL, POSTGRES_URL, REDIS_URL


@dataclass(frozen=True)
class StoreCase:
    name: str
    module: str
    make_url: Callable[[Path], str]
    server: str | None = None  # a URL whose host:port must be reachable
    shared: bool = True  # other processes see the same sessions
    cleanup: Callable[[str], None] | None = None  # drop what make_url created

    def endpoint(self) -> tuple[str, int] | None:
        if self.server is None:
            return None
        parts = urlsplit(self.server)
        return parts.hostname or "127.0.0.1", parts.port or 0


def _ns() -> str:
    return "cc_" + uuid.uuid4().hex[:12]


def _with(url: str, **options: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in options.items())


def _cleanup(name: str) -> Callable[[str], None]:
    """``tests/support/<name>.py``'s ``drop_namespace(url)``: test helpers stay out of src."""

    def run(url: str) -> None:
        mod = importlib.import_module(f"tests.support.{name}")
        mod.drop_namespace(url)

    return run


ALL = [
    StoreCase("memory", "coatcheck.stores.memory", lambda tmp: "memory://", shared=False),
    StoreCase("file", "coatcheck.stores.files", lambda tmp: f"file://{tmp}/sessions"),
    StoreCase("sqlite", "coatcheck.stores.sqlite", lambda tmp: f"sqlite:///{tmp}/sessions.db"),
    StoreCase(
        "redis",
        "coatcheck.stores.redis",
        lambda tmp: _with(REDIS_URL, prefix=_ns() + ":"),
        server=REDIS_URL,
        cleanup=_cleanup("redis"),
    ),
    StoreCase(
        "postgresql",
        "coatcheck.stores.postgresql",
        lambda tmp: _with(POSTGRES_URL, table=_ns()),
        server=POSTGRES_URL,
        cleanup=_cleanup("postgresql"),
    ),
    StoreCase(
        "mysql",
        "coatcheck.stores.mysql",
        lambda tmp: _with(MYSQL_URL, table=_ns()),
        server=MYSQL_URL,
        cleanup=_cleanup("mysql"),
    ),
    StoreCase(
        "memcached",
        "coatcheck.stores.memcached",
        lambda tmp: _with(MEMCACHED_URL, prefix=_ns()),
        server=MEMCACHED_URL,
        cleanup=_cleanup("memcached"),
    ),
]

CASES = [c for c in ALL if importlib.util.find_spec(c.module) is not None]
