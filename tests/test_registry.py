"""The store registry: modules declare their schemes; third parties register theirs."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from coatcheck import ConfigError, open_async_store, open_store, stores
from coatcheck.stores import BUILTIN, ENTRY_POINT_GROUP, register, schemes
from coatcheck.stores.memory import AsyncMemoryStore, MemoryStore


def _module(name: str, *scheme_names: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.SCHEMES = scheme_names  # type: ignore[attr-defined]
    mod.EXTRA = ""  # type: ignore[attr-defined]
    mod.open_sync = lambda url: MemoryStore()  # type: ignore[attr-defined]
    mod.open_async = lambda url: AsyncMemoryStore()  # type: ignore[attr-defined]
    return mod


def test_every_builtin_module_declares_its_schemes_without_importing_a_driver() -> None:
    for name in BUILTIN:
        mod = sys.modules.get(name) or __import__(name, fromlist=["SCHEMES"])
        assert mod.SCHEMES and isinstance(mod.EXTRA, str)
    known = schemes()
    for scheme in ("memory", "file", "sqlite", "redis", "rediss", "redis+sentinel"):
        assert scheme in known
    assert known["mariadb"] == known["mysql"] == "coatcheck.stores.mysql"


def test_a_registered_module_serves_its_scheme_sync_and_async() -> None:
    register(_module("thirdparty_store", "thirdparty"))
    assert isinstance(open_store("thirdparty://x"), MemoryStore)
    assert isinstance(open_async_store("THIRDPARTY://x"), AsyncMemoryStore)
    assert schemes()["thirdparty"] == "thirdparty_store"


def test_a_scheme_cannot_be_taken_over_and_a_non_store_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"already served by coatcheck\.stores\.redis"):
        register(_module("impostor", "redis"))
    with pytest.raises(ConfigError, match="not a store module"):
        register(types.ModuleType("empty"))
    with pytest.raises(ConfigError, match="unknown store URL scheme 'nosuch'"):
        open_store("nosuch://x")


def test_an_installed_package_adds_its_store_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "epstore_mod.py").write_text(
        "from coatcheck.stores.memory import AsyncMemoryStore, MemoryStore\n"
        "SCHEMES = ('epstore',)\nEXTRA = ''\n"
        "def open_sync(url):\n    return MemoryStore()\n"
        "def open_async(url):\n    return AsyncMemoryStore()\n"
    )
    info = tmp_path / "epstore_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: epstore-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nepstore = epstore_mod\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(stores, "_loaded", False)
    monkeypatch.setattr(stores, "_schemes", {})
    assert isinstance(open_store("epstore://anything"), MemoryStore)  # no import by the app
    assert stores.schemes()["epstore"] == "epstore_mod"
