"""What the copy reports, and the checks both the wrapper and the copy make (no I/O here)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from ...errors import ConfigError

log = logging.getLogger("coatcheck")

Progress: TypeAlias = Callable[[int, int | None], None]
"""``progress(done, total)``: records handled so far, and the source's count (None: unknown)."""

Outcome: TypeAlias = Literal["copied", "there", "gone", "unreadable"]
"""What became of one record: copied, already in the target, gone or expired, undecryptable."""


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What one :func:`copy_sessions` run did.

    ``copied``: records written to the target. ``skipped``: records the target already had
    (written by the migrating store or an earlier run), or that expired, vanished or did not
    decrypt between the scan and the read. ``total``: records the scan listed (the two added).
    """

    copied: int
    skipped: int
    total: int

    @classmethod
    def of(cls, outcomes: Sequence[Outcome]) -> CopyReport:
        """The report of a run whose records ended as ``outcomes``."""
        copied = outcomes.count("copied")
        unreadable = outcomes.count("unreadable")
        if unreadable:
            log.warning("copy_sessions: skipped %d record(s) that did not decrypt", unreadable)
        return cls(copied=copied, skipped=len(outcomes) - copied, total=len(outcomes))


def check_pair(old: object, new: object, what: str) -> None:
    """ConfigError unless ``old`` and ``new`` are two different server-side stores."""
    if old is new:
        raise ConfigError(f"{what}: the two stores are the same store")
    for store in (old, new):
        if getattr(store, "client_side", False):
            raise ConfigError(
                f"{what}: a cookie:// store keeps its sessions in the browsers, where no "
                "server can list or copy them; migrate between server-side stores"
            )
