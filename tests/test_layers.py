"""The package's layers, enforced: a lower layer never imports a higher one, and no cycles.

core (errors, config, ids, codec, record, contract, cookies, locks, events) <- stores | engine <-
session (users, and the package's public names) <- web, testing <- cli, demo. Stores import only
the core; the engine and the core import nothing from stores/. Every import counts, also one
inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "coatcheck"

CORE = {"errors", "config", "ids", "codec", "record", "contract", "cookies", "locks", "events"}
CORE.add("crypto")  # AEAD with a key list, shared by the encrypted store and the cookie store
ALLOWED = {
    "core": {"core"},
    "stores": {"core", "stores"},
    "engine": {"core", "engine"},
    "session": {"core", "stores", "engine", "session"},
    "testing": {"core", "stores", "engine", "session", "testing"},
    "web": {"core", "stores", "engine", "session", "web"},
    "app": {"core", "stores", "engine", "session", "web", "app", "testing"},
}


def layer(module: str) -> str:
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else ""
    if first in CORE:
        return "core"
    if first in ("stores", "wrappers", "handlers"):  # stores around stores, or around handlers
        return "stores"
    if first == "engine":
        return "engine"
    if first in ("session", "ops", "users", ""):  # "": the public names, session level
        return "session"
    if first == "testing":
        return "testing"
    if first in ("web", "django"):
        return "web"
    return "app"  # cli, demo


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(SRC).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(module: str, path: Path, known: dict[str, Path], top_level: bool) -> set[str]:
    """coatcheck modules ``module`` imports (all, or only those run at import time)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = tree.body if top_level else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("coatcheck")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("coatcheck"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != module}


KNOWN = modules()


@pytest.mark.parametrize("module", sorted(KNOWN))
def test_a_layer_imports_only_the_layers_below_it(module: str) -> None:
    own = layer(module)
    wrong = sorted(
        f"{target} ({layer(target)})"
        for target in imports(module, KNOWN[module], KNOWN, top_level=False)
        if layer(target) not in ALLOWED[own]
    )
    assert not wrong, f"{module} ({own}) imports a higher or sibling layer: {', '.join(wrong)}"


def test_no_import_cycles() -> None:
    graph = {m: imports(m, p, KNOWN, top_level=True) for m, p in KNOWN.items()}
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            cycle = [*path[path.index(node) :], node]
            raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
        if node in done:
            return
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodules is not a cycle
            visit(nxt, [*path, node])
        done.add(node)

    for m in sorted(graph):
        visit(m, [])
