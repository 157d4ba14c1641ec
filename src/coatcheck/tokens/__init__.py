"""Stateless tokens: the seed's signed token (:func:`sign`, :func:`verify`), and JWT access
tokens with rotating refresh tokens and revocation kept in a store.

The JWT names (:class:`Key`, :class:`AccessTokens`, :class:`Tokens`, :class:`AsyncTokens`,
:class:`TokenPair`) are imported on first use, with PyJWT (``pip install 'coatcheck[jwt]'``),
so neither ``import coatcheck`` nor ``import coatcheck.tokens`` needs it.
See docs/tokens.md for when to use tokens instead of server-side sessions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import InvalidToken, TokenReused
from .signed import MAX_TOKEN, MIN_KEY, sign, verify

if TYPE_CHECKING:
    from ._async import AsyncTokens
    from ._records import TokenPair
    from ._sync import Tokens
    from .access import AccessTokens
    from .keys import Key

_LAZY = {
    "AccessTokens": ".access",
    "AsyncTokens": "._async",
    "Key": ".keys",
    "TokenPair": "._records",
    "Tokens": "._sync",
}

__all__ = [
    "MAX_TOKEN",
    "MIN_KEY",
    "AccessTokens",
    "AsyncTokens",
    "InvalidToken",
    "Key",
    "TokenPair",
    "TokenReused",
    "Tokens",
    "sign",
    "verify",
]


def __getattr__(name: str) -> Any:
    """The JWT names, imported (with PyJWT) on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module, __name__), name)
    except ModuleNotFoundError as e:
        if e.name != "jwt":
            raise
        raise ImportError(
            f"coatcheck.tokens.{name} needs PyJWT: pip install 'coatcheck[jwt]'"
        ) from e
