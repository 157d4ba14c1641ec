"""Cleanup for postgresql test namespaces: drop the table a test's URL names."""

from __future__ import annotations

import psycopg

from coatcheck.stores.postgresql import Statements, parse_url

__all__ = ["drop_namespace"]


def drop_namespace(url: str) -> None:
    """Drop the URL's table, if it is there."""
    settings = parse_url(url)
    with psycopg.connect(settings.conninfo, **settings.connect_kwargs) as conn:
        conn.execute(Statements(settings.table).drop)
