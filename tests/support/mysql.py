"""Cleanup for mysql test namespaces: drop the URL's sessions table."""

from __future__ import annotations

import pymysql

from coatcheck.stores.mysql._config import parse
from coatcheck.stores.mysql._statements import Sql


def drop_namespace(url: str) -> None:
    """Drop the URL's sessions table (tests and benchmarks use one table each)."""
    settings = parse(url)
    conn = pymysql.connect(**settings.connect_args())
    try:
        with conn.cursor() as cur:
            cur.execute(Sql(settings.table).drop_table)
    finally:
        conn.close()
