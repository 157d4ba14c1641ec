"""Coverage-guided fuzzing (atheris) of payload decoding: codec, record envelope, Engine.load.

Not a pytest module. Run from the repository root, new finds going to a scratch directory
so the seed corpus stays small::

    mkdir -p /tmp/corpus-codec
    .venv/bin/python -m tests.fuzz.fuzz_codec /tmp/corpus-codec tests/fuzz/corpus/codec \
        -max_total_time=60

Checked on every input: decoding store bytes raises nothing but ValueError (both decoders);
unpacking a record raises nothing but ValueError; ``Engine.load`` on any stored bytes never
raises; and whatever decodes, encode either refuses with EncodeError or round-trips to the
same data and the same bytes (the lazy-write comparison).
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

import atheris

with atheris.instrument_imports():
    from coatcheck import Config, EncodeError, codec, ids, record
    from coatcheck.contract import Stored
    from coatcheck.engine import Client, Engine

ENGINE = Engine(Config(fingerprint=()))
SID = "B" * 43


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is float:
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    mode, raw = data[0], data[1:]
    big = bool(mode & 1)
    try:
        value = codec.decode(raw, big)
    except ValueError:
        value = None
    if value is not None:
        if type(value) is not dict:
            raise AssertionError("decode returned a non-dict")
        try:
            again, again_big = codec.encode(value)
        except EncodeError:
            pass  # NaN or Infinity (stdlib json reads them), lone surrogates, deep nesting
        else:
            back = codec.decode(again, again_big)
            if not _same(back, value):
                raise AssertionError(f"re-encoding changed the data: {value!r} -> {back!r}")
            if codec.encode(back) != (again, again_big):
                raise AssertionError("encoding is not stable across a round trip")
    try:
        header, _ = record.unpack(raw)
    except ValueError:
        header = None
    if header is not None and type(header.created) is not float:
        raise AssertionError("an unpacked header without a float creation time")
    expires = float(mode) * 1e7
    loaded = ENGINE.load(SID, Stored(raw, expires, 1), Client(), 1e9, followed=bool(mode & 2))
    if loaded.state is None:
        if loaded.follow is None or not ids.is_well_formed(loaded.follow):
            raise AssertionError("a follow to a malformed id")
    elif loaded.state.is_new and loaded.state.data:
        raise AssertionError("a fresh session with data")


def main() -> None:
    logging.disable(logging.CRITICAL)  # the security log warns on every malformed input
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
