"""The docs show working code: their Python blocks run, excerpts match, and links resolve.

Each page's ```python blocks run in order in one namespace (like a notebook), in a temporary
directory, so a page can build on an earlier block. A block that is deliberately not runnable
says so: the info string ```python fragment, or an ``<!-- fragment -->`` line just before it.
A block with the info string ```python excerpt=PATH must appear verbatim in that file, so a
page quoting the examples cannot drift from them. Runnable blocks may only name stores that
need no server (memory://, file://, sqlite://).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import coatcheck
from coatcheck import Config

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE_PAGES = [
    "README.md",
    "docs/guide.md",
    "docs/custom-store.md",
    "docs/security.md",
    "docs/users.md",
]

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(.*)$")
_SERVER_URL = re.compile(
    r"\b(redis|rediss|redis\+sentinel|redis\+cluster|postgresql|postgres|mysql|mariadb"
    r"|memcached)://"
)
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_CODE_SPAN = re.compile(r"(`+).*?\1")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Block:
    page: str
    line: int  # 1-based line of the block's first code line
    info: str
    code: str
    marked_fragment: bool

    @property
    def words(self) -> list[str]:
        return self.info.split()

    @property
    def language(self) -> str:
        return self.words[0] if self.words else ""

    @property
    def excerpt_of(self) -> str | None:
        for word in self.words[1:]:
            if word.startswith("excerpt="):
                return word.removeprefix("excerpt=")
        return None

    @property
    def runnable(self) -> bool:
        return (
            self.language == "python"
            and "fragment" not in self.words
            and self.excerpt_of is None
            and not self.marked_fragment
        )


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with its info string and where it starts."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        fence, info = opened.groups()
        before = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
        start = i + 1
        i = start
        while i < len(lines) and not lines[i].strip().startswith(fence):
            i += 1
        code = "\n".join(lines[start:i]) + "\n"
        out.append(Block(page.name, start + 1, info.strip(), code, before == "<!-- fragment -->"))
        i += 1
    return out


def prose(page: Path) -> str:
    """The page without fenced blocks and code spans: where links are."""
    kept, fence = [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            kept.append(_CODE_SPAN.sub("", line))
    return "\n".join(kept)


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_python_blocks_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (ROOT / page).is_file(), f"{page} is missing"
    blocks = [b for b in read_blocks(ROOT / page) if b.language == "python"]
    runnable = [b for b in blocks if b.runnable]
    unchecked = [b for b in blocks if not b.runnable and b.excerpt_of is None]
    assert runnable, f"{page} has no runnable python block"
    assert len(runnable) >= len(unchecked), f"{page}: most python blocks should run"
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # pages may import the examples
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for block in runnable:
        named = _SERVER_URL.search(block.code)
        assert named is None, (
            f"{page}:{block.line}: a runnable block names a store that needs a server "
            f"({named.group(0) if named else ''}); use memory://, file:// or sqlite://, "
            "or mark the block ```python fragment"
        )
        # Leading newlines make tracebacks point at the page's own line numbers.
        code = compile("\n" * (block.line - 1) + block.code, str(ROOT / page), "exec")
        exec(code, namespace)


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_excerpts_match_their_source(page: str) -> None:
    for block in read_blocks(ROOT / page):
        source = block.excerpt_of
        if source is None:
            continue
        text = (ROOT / source).read_text(encoding="utf-8")
        assert block.code in text, f"{page}:{block.line}: the excerpt differs from {source}"


def test_block_reader_sees_fragments_and_excerpts(tmp_path: Path) -> None:
    # The reader itself, on a page made for it: a wrong parse would run or skip the wrong code.
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nrun = 1\n```\n\n<!-- fragment -->\n```python\nskip()\n```\n"
        "```python fragment\nskip()\n```\n````python excerpt=x.py\n```\n````\n```sh\nls\n```\n"
    )
    blocks = read_blocks(page)
    assert [(b.line, b.runnable) for b in blocks] == [
        (2, True),
        (7, False),
        (10, False),
        (13, False),
        (16, False),
    ]
    assert blocks[3].excerpt_of == "x.py" and blocks[3].code == "```\n"


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of ``page``."""
    seen: Counter[str] = Counter()
    out = set()
    for line in prose(page).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        out.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return out


def broken_links(page: Path) -> list[str]:
    text = prose(page)
    targets = _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)
    broken = []
    for target in targets:
        if _SCHEME.match(target):
            continue  # a web address, not a file in this repository
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    return broken


def test_relative_links_point_at_files_that_exist() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    broken = {str(page.relative_to(ROOT)): found for page in pages if (found := broken_links(page))}
    assert not broken, f"broken links: {broken}"


def test_link_checker_catches_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# A heading, here\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading-here) [web](https://example.org/x)\n"
        "[gone](missing.md) [bad anchor](there.md#nope) `[code](ignored.md)`\n"
        "```\n[in a block](ignored.md)\n```\n[ref]: missing2.md\n"
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "there.md#nope (no such heading)",
        "missing2.md (no such file)",
    ]


def table_rows(page: str, heading: str) -> list[list[str]]:
    """The cells of the first table under ``heading`` in ``page``."""
    text = (ROOT / page).read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    rows = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif rows:
            break
    return rows[2:]  # past the header and the --- line


def test_guide_lists_every_option_with_its_true_default() -> None:
    documented = {}
    for row in table_rows("docs/guide.md", "## Every option"):
        name, default = (re.search(r"`([^`]*)`", cell) for cell in row[:2])
        assert name and default, row
        documented[name.group(1)] = ast.literal_eval(default.group(1))
    actual = {f.name: f.default for f in dataclasses.fields(Config)}
    assert documented == actual


def test_guide_tells_what_to_do_about_every_error() -> None:
    rows = table_rows("docs/guide.md", "## Errors, and what to do about each")
    documented = {re.findall(r"`(\w+)`", row[0])[0] for row in rows}
    errors = {
        name
        for name in coatcheck.__all__
        if isinstance(getattr(coatcheck, name), type)
        and issubclass(getattr(coatcheck, name), coatcheck.CoatcheckError)
    }
    assert documented == errors - {"CoatcheckError"}
