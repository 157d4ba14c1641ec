"""Coverage-guided fuzzing (atheris) of the Cookie parser, id syntax and Set-Cookie builder.

Not a pytest module. Run from the repository root, new finds going to a scratch directory
so the seed corpus stays small::

    mkdir -p /tmp/corpus-cookies
    .venv/bin/python -m tests.fuzz.fuzz_cookies /tmp/corpus-cookies tests/fuzz/corpus/cookies \
        -max_total_time=60

Checked on every input: parsing a Cookie header never raises; what the engine takes from
it is a well-formed id or nothing; a well-formed id goes out in a Set-Cookie header that
parses back to it; arbitrary text never crashes ``is_well_formed`` or ``open_successor``.
"""

from __future__ import annotations

import logging
import sys

import atheris

with atheris.instrument_imports():
    from coatcheck import Config, ids
    from coatcheck.cookies import CookieAction, session_cookie, set_cookie
    from coatcheck.engine import Engine

NAMES = ("session", "sid", "__Host-s")
ENGINES = {name: Engine(Config(cookie_name=name)) for name in NAMES}
CONFIG = {name: e.config for name, e in ENGINES.items()}
FIXED_ID = "A" * 43


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
    header = fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 4096))
    value = session_cookie(header, name)
    if value is not None and not isinstance(value, str):
        raise AssertionError(f"session_cookie returned {type(value)}")
    sid = ENGINES[name].parse(value)
    if sid is not None:
        if not ids.is_well_formed(sid) or sid != value:
            raise AssertionError(f"engine accepted a malformed id {sid!r}")
        if len(ids.storage_key(sid)) != 64:
            raise AssertionError("storage key is not 64 characters")
        out = set_cookie(CONFIG[name], CookieAction(sid, fdp.ConsumeIntInRange(0, 10**8)), now=0)
        first = out.split("; ")[0]
        if session_cookie(first, name) != sid or "\r" in out or "\n" in out:
            raise AssertionError(f"Set-Cookie does not round-trip: {out!r}")
    rest = fdp.ConsumeUnicode(200)
    ids.is_well_formed(rest, 32)
    opened = ids.open_successor(FIXED_ID, rest)
    if opened is not None and not isinstance(opened, str):
        raise AssertionError("open_successor returned a non-str")


def main() -> None:
    logging.disable(logging.CRITICAL)  # the security log warns on every malformed input
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
