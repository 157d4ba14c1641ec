"""What every wrapper does with the store it wraps: pass on its optional methods.

A store may have methods beyond the contract that callers look up by name (``coatcheck
init`` calls ``create_schema``, a lock waiter ``wait_for_release``, a PHP-shaped handler's
request ``end_request``). A wrapper has such a method exactly when the store it forwards
to has it, so a caller finds it through any stack of wrappers.
"""

from __future__ import annotations


def forward(wrapper: object, inner: object, *names: str) -> None:
    """Set each of ``names`` that ``inner`` has on ``wrapper``, as ``inner``'s own."""
    for name in names:
        found = getattr(inner, name, None)
        if found is not None:
            setattr(wrapper, name, found)
