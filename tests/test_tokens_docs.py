"""docs/tokens.md shows working code: its runnable Python blocks run, in order, in one
namespace (as tests/test_docs.py runs the other pages), and its excerpts name real APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .test_docs import _SERVER_URL, ROOT, read_blocks

PAGE = ROOT / "docs" / "tokens.md"


def test_tokens_page_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in read_blocks(PAGE) if b.language == "python"]
    runnable = [b for b in blocks if b.runnable]
    assert len(runnable) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for block in runnable:
        assert _SERVER_URL.search(block.code) is None, f"tokens.md:{block.line} needs a server"
        code = compile("\n" * (block.line - 1) + block.code, str(PAGE), "exec")
        exec(code, namespace)
    assert (tmp_path / "tokens.db").exists()  # the examples really used a store


def test_tokens_page_fragments_compile() -> None:
    for block in read_blocks(PAGE):
        if block.language == "python" and not block.runnable:
            compile(block.code, f"tokens.md:{block.line}", "exec")


def test_tokens_page_keeps_a_figures_section() -> None:
    assert "\n## Figures\n" in PAGE.read_text(encoding="utf-8")
