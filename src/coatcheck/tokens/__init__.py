"""Stateless tokens: the seed's signed token (:func:`sign`, :func:`verify`).

See docs/tokens.md for when to use them instead of server-side sessions.
"""

from .signed import MAX_TOKEN, MIN_KEY, sign, verify

__all__ = ["MAX_TOKEN", "MIN_KEY", "sign", "verify"]
