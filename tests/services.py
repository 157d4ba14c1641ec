"""Reaching the real servers the tests use.

A test for a service may skip only when the service is unreachable and CI is unset; under
CI an unreachable service fails the test, so a CI run can never pass by skipping stores.
"""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get(
    "COATCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("COATCHECK_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
MEMCACHED_URL = os.environ.get("COATCHECK_TEST_MEMCACHED", "memcached://127.0.0.1:11211")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(host: str, port: int, what: str) -> None:
    """Skip (outside CI) or fail (under CI) when ``what`` at host:port is unreachable."""
    if reachable(host, port):
        return
    message = f"{what} is not reachable on {host}:{port}"
    if in_ci():
        pytest.fail(f"{message}, and CI is set: store tests may not skip under CI")
    pytest.skip(message)
