"""The ``coatcheck`` command: store housekeeping, session listings and the demo.

The store comes from ``--store URL`` or the ``COATCHECK_STORE`` environment variable. A bad
URL, an unreachable store, a missing schema or an unknown key prints one line starting
``coatcheck:`` on stderr and exits with status 2; Ctrl-C exits with 130. Only ``init``
creates a schema.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import click

from ._admin import gc, init, migrate, reencrypt
from ._base import FAILED, INTERRUPTED, quiet_broken_pipe
from ._bench import bench, demo
from ._sessions import ls, rm, show, stats

__all__ = ["main"]


def _version() -> str:
    try:
        return version("coatcheck")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _Group(click.Group):
    """Turns any failure inside a command into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Exit(INTERRUPTED) from None
        except BrokenPipeError:
            quiet_broken_pipe()
            raise click.exceptions.Exit(0) from None
        except Exception as e:  # a command line prints the reason in one line, not a traceback
            click.echo(f"coatcheck: {e}", err=True)
            raise click.exceptions.Exit(FAILED) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    _version(), "--version", prog_name="coatcheck", message="%(prog)s %(version)s"
)
def cli() -> None:
    """Server-side HTTP sessions: look after a coatcheck store, or run the demo.

    Every command takes --store URL (default: $COATCHECK_STORE, else
    sqlite:///coatcheck-demo.db).
    """


for command in (init, ls, show, rm, gc, stats, migrate, bench, reencrypt, demo):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="coatcheck",
            standalone_mode=False,
        )
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.Abort:  # Ctrl-C at a prompt, or while click parsed
        return INTERRUPTED
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
