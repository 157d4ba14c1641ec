"""Migrating by URL: ``?migrate_to=env:VARIABLE`` on the old store's URL.

The variable holds the new store's URL (URLs carry passwords, and a URL inside a URL needs
escaping: an environment variable avoids both). Options beside ``migrate_to`` stay with the
old store's URL (``?encrypt=`` among them); the new URL takes its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus

from ...errors import ConfigError
from ...stores.base import AsyncStore, Store
from .._options import take_options
from ._async import AsyncMigratingStore
from ._sync import MigratingStore

OPTION: Final = "migrate_to"
"""The URL option this wrapper takes out of a store URL before the store sees it."""


@dataclass(frozen=True)
class Migration:
    """A migration as a URL asked for it: the new store's URL, read from the environment."""

    url: str = ""

    def wrap_sync(self, old: Store, new: Store) -> MigratingStore:
        return MigratingStore(old, new)

    def wrap_async(self, old: AsyncStore, new: AsyncStore) -> AsyncMigratingStore:
        return AsyncMigratingStore(old, new)


def split_url(url: str) -> tuple[str, Migration | None]:
    """The URL without ``migrate_to``, and the migration it asks for (or None).

    ConfigError when the option is not ``env:VARIABLE``, the variable is unset or empty, or
    its URL asks for a migration of its own.
    """
    left, taken = take_options(url, (OPTION,))
    if not taken:
        return url, None
    return left, Migration(_target_url(taken[OPTION]))


def _target_url(source: str) -> str:
    kind, _, name = source.partition(":")
    if kind != "env" or not name:
        raise ConfigError(
            "store URL option migrate_to takes env:VARIABLE, the environment variable holding "
            "the new store's URL"
        )
    target = os.environ.get(name, "").strip()
    if not target:
        raise ConfigError(
            f"store URL option migrate_to names the environment variable {name}, "
            "which is not set: set it to the new store's URL"
        )
    if OPTION in _names(target):
        raise ConfigError("the new store's URL (migrate_to) cannot ask for a migration itself")
    return target


def _names(url: str) -> set[str]:
    """The option names in ``url``'s query."""
    query = url.partition("?")[2].partition("#")[0]
    return {unquote_plus(part.partition("=")[0]) for part in query.split("&") if part}
