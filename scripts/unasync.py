"""Generate the sync twin of every async store source: ``python scripts/unasync.py [--check]``.

Each store's I/O is written once, as asyncio code in a file named ``_async*.py``; this script
writes its sync twin beside it (``_async.py`` -> ``_sync.py``, ``_async_ops.py`` ->
``_sync_ops.py``) by replacing tokens, the way httpcore keeps its two halves in step. The
generated files are committed (so the package needs no build step) and ``make test`` runs
``--check``, which fails when a generated file is out of date.

Replacements are whole words. Beyond the common ones below, a source may add its own with
lines of the form ``# unasync: old -> new`` (for a driver whose sync and async packages have
different names, say). A line ending in ``# unasync: drop`` is left out of the sync twin.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src" / "coatcheck"

COMMON = {
    "async def": "def",
    "async with": "with",
    "async for": "for",
    "await ": "",
    "AsyncIterator": "Iterator",
    "AsyncIterable": "Iterable",
    "AsyncGenerator": "Generator",
    "AsyncContextManager": "ContextManager",
    "asynccontextmanager": "contextmanager",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "StopAsyncIteration": "StopIteration",
    "aclose": "close",
    "asyncio.sleep": "time.sleep",
    "_async": "_sync",
    "arun_blocking": "run_blocking",
}
_CLASS = re.compile(r"\bAsync([A-Z]\w*)")
_DIRECTIVE = re.compile(r"^\s*# unasync: (?P<old>.+?) -> (?P<new>.+?)\s*$")
_DROP = "# unasync: drop"
HEADER = "# Generated from {name} by scripts/unasync.py: edit that file, then run `make unasync`.\n"


def twin_name(path: Path) -> Path:
    return path.with_name(path.name.replace("_async", "_sync", 1))


def convert(text: str, name: str) -> str:
    table = dict(COMMON)
    for line in text.splitlines():
        m = _DIRECTIVE.match(line)
        if m:
            table[m.group("old")] = m.group("new")
    words = sorted(table, key=len, reverse=True)
    pattern = re.compile("|".join(_word(w) for w in words))
    out = [HEADER.format(name=name)]
    for line in text.splitlines(keepends=True):
        if _DIRECTIVE.match(line) or line.rstrip().endswith(_DROP):
            continue
        line = pattern.sub(lambda m: table[m.group(0)], line)
        out.append(_CLASS.sub(r"\1", line))
    return _tidy("".join(out), name)


def _tidy(text: str, name: str) -> str:
    """Drop imports the twin no longer uses, then format it as ``make lint`` expects."""
    ruff = [sys.executable, "-m", "ruff"]
    fake = str(ROOT / name.replace("_async", "_sync", 1))
    fix = [*ruff, "check", "--fix-only", "--select", "I,F401", "--stdin-filename", fake, "-"]
    text = subprocess.run(fix, input=text, capture_output=True, text=True, check=True).stdout
    fmt = [*ruff, "format", "--stdin-filename", fake, "-"]
    return subprocess.run(fmt, input=text, capture_output=True, text=True, check=True).stdout


def _word(w: str) -> str:
    start = r"\b" if w[0].isalnum() or w[0] == "_" else ""
    end = r"\b" if w[-1].isalnum() or w[-1] == "_" else ""
    return start + re.escape(w) + end


def sources() -> list[Path]:
    found = {*ROOT.rglob("_async*.py"), *ROOT.rglob("*_async.py")}  # and stores/_rows_async.py
    return sorted(p for p in found if "__pycache__" not in p.parts)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for src in sources():
        dst = twin_name(src)
        want = convert(src.read_text(), src.name)
        have = dst.read_text() if dst.exists() else None
        if have == want:
            continue
        if check:
            stale.append(dst)
        else:
            dst.write_text(want)
            print(f"wrote {dst.relative_to(ROOT.parent.parent)}")
    if stale:
        names = ", ".join(str(p.relative_to(ROOT.parent.parent)) for p in stale)
        print(f"out of date: {names}; run `make unasync`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
