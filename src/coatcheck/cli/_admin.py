"""``init``, ``gc``, ``reencrypt`` and ``migrate``: store housekeeping."""

from __future__ import annotations

import click

from .. import open_store
from ..errors import ConfigError
from ._base import PROBE, Output, opened, optional, output_options, store_option


@click.command("init", short_help="Create the store's schema if it needs one.")
@store_option
def init(url: str) -> None:
    """Create the store's schema (tables, indexes) if it needs one.

    The only command that creates anything; safe to run again.
    """
    with open_store(url) as store:
        create = getattr(store, "create_schema", None)
        if create is None:
            store.validate_id(PROBE)
            click.echo("the store answers; it needs no schema")
        else:
            create()
            click.echo("schema ready")


@click.command("gc")
@store_option
@output_options
def gc(url: str, plain: bool, as_json: bool) -> None:
    """Delete expired sessions now, in batches."""
    out = Output(plain, as_json)
    with opened(url) as store:
        store.validate_id(PROBE)  # an unreachable store fails here, not as "removed 0"
        if store.expires_itself:
            removed = 0
            if not as_json:
                out.line("the store expires sessions itself: nothing to collect")
        elif (batches := optional(store, "gc_batches")) is None:
            removed = store.gc()
        else:
            pending = optional(store, "gc_pending")
            total: int | None = pending() if pending is not None and out.rich else None
            removed = 0
            with out.progress("deleting expired sessions", total) as advance:
                for deleted in batches():
                    removed += deleted
                    advance(deleted)
    if as_json:
        out.json({"removed": removed})
    else:
        out.line(f"removed {removed} expired session(s)")


@click.command("reencrypt", short_help="Rewrite sessions under the newest key.")
@store_option
def reencrypt(url: str) -> None:
    """Rewrite encrypted sessions under the newest key (the URL's ?encrypt=env:VARIABLE)."""
    from ..wrappers import EncryptedStore, reencrypt

    store = open_store(url)
    if not isinstance(store, EncryptedStore):
        raise ConfigError("reencrypt needs the keys: add ?encrypt=env:VARIABLE to the store URL")
    with store:
        click.echo(f"re-encrypted {reencrypt(store)} session(s) under the newest key")


@click.command("migrate", short_help="Copy sessions to another store.")
@click.option("--from", "source", required=True, metavar="URL", help="The store to copy from.")
@click.option("--to", "target", required=True, metavar="URL", help="The store to copy to.")
@output_options
def migrate(source: str, target: str, plain: bool, as_json: bool) -> None:
    """Copy every live session from one store to another.

    Both stores need their schema (coatcheck init); sessions keep their keys and expiry.
    """
    from ..wrappers.migrating import copy_sessions

    out = Output(plain, as_json)
    with (
        opened(source) as src,
        opened(target) as dst,
        out.progress("copying sessions") as ticker,
    ):
        report = copy_sessions(src, dst, progress=ticker.update)
    copied, skipped, total = report.copied, report.skipped, report.total
    if as_json:
        out.json({"copied": copied, "skipped": skipped, "total": total})
    else:
        out.line(f"copied {copied} of {total} session(s), skipped {skipped}")
