"""What a bearer token costs per request: bytes sent, time to verify, store round trips.

For a JWT access token per algorithm (HS256, EdDSA, ES256): the size of the
``Authorization`` header carrying it; the median time of ``AccessTokens.verify`` (signature
and claims, no store); the store round trips a request costs, counted (0 without
revocation, 1 with the Redis revocation check); and the median time of ``Tokens.verify``
with that check against the test Redis. A session cookie's header is printed for
comparison. Prints a markdown table; runs in well under 30 s.

Run: python -m bench.tokens (COATCHECK_TEST_REDIS overrides the server; BENCH_N the calls).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from coatcheck.ids import new_id
from coatcheck.tokens import AccessTokens, Key, Tokens

from .common import namespaced

REDIS = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
N = int(os.environ.get("BENCH_N", "3000"))  # calls per figure (a third of them with Redis)
ALGORITHMS = ("HS256", "EdDSA", "ES256")
CLAIMS = {"scope": "orders:read orders:write"}  # a typical API token: subject, scope, sid


def median_us(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(200, n)):  # warm-up: caches, the connection, the Lua scripts
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1000


def counted_reads(tokens: Tokens) -> list[int]:
    """Wrap the store's read so each call is counted (the store is real, untouched)."""
    count = [0]
    real = tokens.store.read

    def read(key: str, lock: Any = None) -> Any:
        count[0] += 1
        return real(key, lock)

    tokens.store.read = read  # type: ignore[method-assign]
    return count


def measure(algorithm: str, url: str) -> dict[str, Any]:
    keys = AccessTokens(
        Key.generate("2025-01", algorithm),  # type: ignore[arg-type]
        issuer="https://auth.example.com",
        audience="https://api.example.com",
    )
    with Tokens(url, keys) as tokens:
        pair = tokens.login("user-1234567", CLAIMS)
        token = pair.access_token
        header = f"Authorization: Bearer {token}"
        pure = median_us(lambda: keys.verify(token), N)
        reads = counted_reads(tokens)
        before = reads[0]
        keys.verify(token)
        pure_trips = reads[0] - before
        n = max(100, N // 3)
        with_redis = median_us(lambda: tokens.verify(token), n)
        before = reads[0]
        for _ in range(100):
            tokens.verify(token)
        trips = (reads[0] - before) / 100
    return {
        "algorithm": algorithm,
        "token": len(token),
        "header": len(header.encode()),
        "verify": pure,
        "pure_trips": pure_trips,
        "trips": trips,
        "with_redis": with_redis,
    }


def main() -> int:
    url = namespaced(REDIS, "prefix", "cc_bench_tokens_") + ":"
    started = time.perf_counter()
    try:
        rows = [measure(alg, url) for alg in ALGORITHMS]
    finally:
        from tests.support.redis import drop_namespace

        drop_namespace(url)
    print(f"bench.tokens: {N} calls per figure, Python {platform.python_version()}, {REDIS}")
    print()
    print(
        "| token | token chars | Authorization header bytes | verify µs (median) "
        "| store round trips | with Redis revocation: round trips | µs (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| JWT {r['algorithm']} | {r['token']} | {r['header']} | {r['verify']:.1f} "
            f"| {r['pure_trips']} | {r['trips']:g} | {r['with_redis']:.1f} |"
        )
    cookie = f"Cookie: session={new_id()}"
    print()
    print(
        f"For comparison, a coatcheck session cookie: {len(cookie.encode())} bytes "
        "(`Cookie: session=<43 characters>`); 2 store round trips per request that uses it "
        "(load with the lock, then save or release), 1 when read-only."
    )
    print(f"\n(ran in {time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
