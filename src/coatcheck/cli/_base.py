"""What every command shares: the store option, opening a store, output and failures.

Output goes to a terminal as rich tables and progress bars, and everywhere else (a pipe, a
file, ``--plain``) as plain text; ``--json`` prints one JSON document. Progress bars go to
stderr, so what a command prints on stdout stays the same with or without a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
import orjson
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .. import open_store
from ..stores.base import Store

DEFAULT_STORE = "sqlite:///coatcheck-demo.db"
FAILED = 2
INTERRUPTED = 130
PROBE = "0" * 64  # a storage key no session has: reading it proves the store answers

F = TypeVar("F", bound=Callable[..., Any])


class Failure(Exception):
    """A reason to stop that the user can act on: printed as one line, exit status 2."""


def store_option(f: F) -> F:
    """``--store URL``, defaulting to $COATCHECK_STORE, else the demo's SQLite file."""
    option = click.option(
        "--store",
        "url",
        envvar="COATCHECK_STORE",
        default=DEFAULT_STORE,
        show_default=True,
        metavar="URL",
        help="Store URL (default: $COATCHECK_STORE if set).",
    )
    return option(f)


def count_option(flag: str, default: int, help: str, *, least: int = 1) -> Callable[[F], F]:
    """An option taking a whole number N >= ``least`` (``--limit N``, ``--sessions N``)."""
    return click.option(
        flag,
        type=click.IntRange(min=least),
        default=default,
        show_default=True,
        metavar="N",
        help=help,
    )


def output_options(f: F) -> F:
    """``--plain`` and ``--json``: how the command prints its result."""
    f = click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document instead of text."
    )(f)
    return click.option(
        "--plain", is_flag=True, help="Plain text even on a terminal (no tables, no colour)."
    )(f)


@dataclass
class Output:
    """Where and how a command prints: ``rich`` on a terminal, plain text otherwise."""

    plain: bool = False
    as_json: bool = False

    def __post_init__(self) -> None:
        self.rich = not (self.plain or self.as_json) and sys.stdout.isatty()
        self.console = Console(file=sys.stdout, highlight=False) if self.rich else None

    def line(self, text: str = "") -> None:
        if self.console is not None:
            self.console.print(text, markup=False)
        else:
            click.echo(text)

    def json(self, value: Any) -> None:
        click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], wrap: Sequence[str] = ()
    ) -> None:
        """Rows under headers: a table on a terminal (the ``wrap`` columns may wrap when it
        is narrow), space-aligned columns otherwise."""
        if self.console is not None:
            table = Table(
                box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True
            )
            for name in headers:
                wraps = name in wrap
                table.add_column(name, no_wrap=not wraps, min_width=len(name) if wraps else None)
            for row in rows:
                table.add_row(*row)
            self.console.print(table)
            return
        widths = [max(len(cell) for cell in col) for col in zip(headers, *rows, strict=True)]
        for row in (headers, *rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            click.echo("  ".join(cells).rstrip())

    def pairs(self, items: Sequence[tuple[str, str]]) -> None:
        """``name: value`` lines (a two-column table on a terminal)."""
        if self.console is not None:
            table = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
            table.add_column(style="bold")
            table.add_column(justify="right")
            for name, value in items:
                table.add_row(name, value)
            self.console.print(table)
            return
        for name, value in items:
            click.echo(f"{name}: {value}")

    @contextmanager
    def progress(self, what: str, total: int | None = None) -> Iterator[Ticker]:
        """A progress bar on stderr while the block runs (only on a terminal). Without
        ``total`` it shows a running count."""
        if not self.rich or not sys.stderr.isatty():
            yield Ticker()
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        columns += [MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            yield Ticker(bar, bar.add_task(what, total=total))


class Ticker:
    """Moves a progress bar; does nothing without one."""

    def __init__(self, bar: Progress | None = None, task: TaskID | None = None) -> None:
        self._bar = bar
        self._task = task

    def __call__(self, n: int) -> None:
        """``n`` more done."""
        if self._bar is not None and self._task is not None:
            self._bar.advance(self._task, n)

    def update(self, done: int, total: int | None) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)


@contextmanager
def opened(url: str, *, schema: bool = True) -> Iterator[Store]:
    """The store at ``url``, open; with ``schema``, one whose schema exists where it has
    one (Failure if not: only ``init`` creates it)."""
    with open_store(url) as store:
        has_schema = optional(store, "has_schema") if schema else None
        if has_schema is not None and not has_schema():
            raise Failure("the store has no session table yet: run `coatcheck init` first")
        yield store


def optional(store: Store, name: str) -> Any:
    """An optional store method (``has_schema``, ``gc_batches``...), found through
    wrappers (which keep the store they wrap as ``inner``); None when absent."""
    seen: object = store
    while seen is not None:
        found = getattr(seen, name, None)
        if found is not None:
            return found
        seen = getattr(seen, "inner", None)
    return None


def when(ts: float, short: bool = False) -> str:
    """A Unix time as local time, to the second (``short``: without the year)."""
    return time.strftime("%m-%d %H:%M:%S" if short else "%Y-%m-%d %H:%M:%S", time.localtime(ts))


def quiet_broken_pipe() -> None:
    """stdout's reader went away (``coatcheck ls | head``): drop what is left unprinted."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
