"""Sessions or tokens, in one run: ``python -m bench.stateless``.

Runs bench.cookie_store (cookie:// against redis://, with and without a revocation list) and
bench.tokens (JWT HS256, EdDSA, ES256, with and without a Redis revocation check) one after
the other in this process, on the same Redis, and ends with how long a revocation takes to
bite for each. docs/tokens.md ("Figures") quotes a run of it.
"""

from __future__ import annotations

import time

from . import cookie_store, tokens

REVOCATION = """
| model | a logout or "log out everywhere" takes effect |
|---|---|
| server-side session (redis://) | at the next request: the record is gone |
| cookie:// with a revocation list | at the next request: the old id's hash is on the list |
| cookie:// without one | when the sealed deadline passes (idle timeout) |
| JWT with the revocation check (`Tokens.verify`) | at the next request (one store read) |
| JWT without it (`AccessTokens.verify`) | when `exp` passes |
"""


def main() -> None:
    started = time.perf_counter()
    cookie_store.main()
    print()
    tokens.main()
    print(REVOCATION)
    print(f"(whole run {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
