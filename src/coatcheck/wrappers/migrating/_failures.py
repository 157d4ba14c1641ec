"""What the migrating wrapper does when the new store fails: log it, count it, carry on.

Shared by the sync and async wrappers (no I/O here). The old store is the source of truth
while a migration runs, so a request never fails because the new store did: the failure is
logged (storage keys only, never raw ids) and counted, and the next ``coatcheck migrate``
run fills in what the new store lacks.
"""

from __future__ import annotations

import logging
import threading

from ...errors import CoatcheckError

log = logging.getLogger("coatcheck")


class Failures:
    """A thread-safe count of the new store's failures, each one logged as a warning."""

    def __init__(self) -> None:
        self._count = 0
        self._guard = threading.Lock()

    @property
    def count(self) -> int:
        return self._count

    def record(self, doing: str, key: str | None, error: BaseException, *, dropped: bool) -> None:
        """Count and log one failure. ``dropped``: the new store holds no stale copy of ``key``
        (it was deleted there, or there is no key), so a later copy run puts things right."""
        with self._guard:
            self._count += 1
        if key is None:
            where, then = "", "the old store's result stands"
        elif dropped:
            where = f" for storage key {key}"
            then = "its copy there was dropped; the next `coatcheck migrate` run copies it again"
        else:
            where = f" for storage key {key}"
            then = (
                "the new store may keep a stale copy: before switching over, empty the new "
                "store and run `coatcheck migrate` again"
            )
        log.warning(
            "migrating store: %s on the new store failed%s (%s); %s",
            doing,
            where,
            describe(error),
            then,
        )


def describe(error: BaseException) -> str:
    """The error's type, plus its message when it is ours (coatcheck messages are safe to log)."""
    name = type(error).__name__
    if isinstance(error, CoatcheckError):
        detail = (str(error).strip().splitlines() or [""])[0]
        return f"{name}: {detail}" if detail else name
    return name
