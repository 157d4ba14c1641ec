"""docs/encryption.md shows working code: its python blocks run, in order, in one namespace.

The same rules as tests/test_docs.py (whose block reader this uses): blocks marked as
fragments are skipped, and runnable blocks name only stores that need no server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .test_docs import _SERVER_URL, ROOT, read_blocks

PAGE = ROOT / "docs" / "encryption.md"


def test_encryption_page_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COATCHECK_KEYS", "")  # the page sets it; restored afterwards
    runnable = [b for b in read_blocks(PAGE) if b.runnable]
    assert len(runnable) >= 4
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for block in runnable:
        assert _SERVER_URL.search(block.code) is None, f"{PAGE}:{block.line} needs a server"
        code = compile("\n" * (block.line - 1) + block.code, str(PAGE), "exec")
        exec(code, namespace)


def test_security_page_links_to_the_encryption_page() -> None:
    assert "(encryption.md)" in (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
