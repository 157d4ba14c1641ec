"""Taking a wrapper's options out of a store URL before the store sees the rest.

A wrapper is asked for by options on any store URL (``?encrypt=``, ``?migrate_to=``); the
store behind it must not see them, and every other option stays exactly as written.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import unquote_plus

from ..errors import ConfigError


def take_options(url: str, names: Collection[str]) -> tuple[str, dict[str, str]]:
    """``url`` without the query options in ``names``, and their values (unquoted).

    ConfigError when one of them is given twice. No such option: ``url`` itself, and ``{}``.
    """
    base, qmark, rest = url.partition("?")
    if not qmark or not any(name in rest for name in names):
        return url, {}
    query, hash_, fragment = rest.partition("#")
    kept: list[str] = []
    taken: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        name = unquote_plus(name)
        if name not in names:
            kept.append(part)
        elif name in taken:
            raise ConfigError(f"store URL option {name!r} given twice")
        else:
            taken[name] = unquote_plus(value)
    if not taken:
        return url, {}
    return base + ("?" + "&".join(kept) if kept else "") + hash_ + fragment, taken
