"""``ls``, ``show``, ``rm`` and ``stats``: the sessions in a store, by storage key."""

from __future__ import annotations

import shlex
from typing import Any

import click
import orjson

from .. import codec, users
from ..config import Config
from ..contract import Meta
from ..stores.base import Store
from ._base import (
    F,
    Failure,
    Output,
    count_option,
    opened,
    output_options,
    store_option,
    when,
)
from ._records import Record, listing_order, load, load_all, resolve

IDLE_TIMEOUT = Config().idle_timeout
KEY_SHOWN = 12  # characters of a storage key that ls shows
LIMIT = 50  # sessions per page of ls


def idle_option(f: F) -> F:
    """``--idle-timeout SECONDS``: the app's, to tell a session's last access from its deadline."""
    return click.option(
        "--idle-timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=IDLE_TIMEOUT,
        show_default=True,
        metavar="SECONDS",
        help="The app's idle_timeout, to tell when a session was last used.",
    )(f)


# --- ls ---------------------------------------------------------------------------------


@click.command("ls", short_help="List sessions, a page at a time.")
@store_option
@click.option("--user", metavar="USER", help="Only the sessions of this logged-in user.")
@click.option("--expired", is_flag=True, help="Only expired sessions still kept (database_ttl).")
@count_option("--limit", LIMIT, "Sessions per page.")
@count_option("--offset", 0, "Where the page starts (see above).", least=0)
@idle_option
@output_options
def ls(
    url: str,
    user: str | None,
    expired: bool,
    limit: int,
    offset: int,
    idle_timeout: float,
    plain: bool,
    as_json: bool,
) -> None:
    """List sessions: key prefix, user, created, last access, expires, size, flags.

    Latest deadline first. Without filters --offset counts records in that order and only
    the page's records are read; the footer gives the offset of the next page. With --user
    or --expired, --offset counts matching sessions.
    """
    out = Output(plain, as_json)
    with opened(url) as store:
        now = store.clock()
        metas = listing_order(store.scan())
        if user is None and not expired:
            page, next_offset = _page(store, metas, offset, limit, now)
        else:
            found = _matching(store, metas, user, expired, now, out)
            page = found[offset : offset + limit]
            next_offset = offset + limit if offset + limit < len(found) else None
    if as_json:
        rows = [r.summary(now, idle_timeout) for r in page]
        out.json({"sessions": rows, "offset": offset, "next_offset": next_offset})
        return
    if not page:
        out.line("no sessions")
    else:
        headers = ("KEY", "USER", "CREATED", "LAST ACCESS", "EXPIRES", "SIZE", "FLAGS")
        lines = [_row(r, now, idle_timeout, out.rich) for r in page]
        out.table(headers, lines, wrap=("USER", "FLAGS"))
    if next_offset is not None:
        again = [f"--user {shlex.quote(user)}"] if user is not None else []
        again += ["--expired"] if expired else []
        again += [f"--limit {limit}"] if limit != LIMIT else []
        note = " ".join(["more: coatcheck ls", *again, f"--offset {next_offset}"])
        if out.rich:
            out.line(note)
        else:
            click.echo(note, err=True)  # stdout stays rows only, for scripts


def _row(r: Record, now: float, idle_timeout: float, short: bool) -> list[str]:
    assert r.header is not None
    return [
        r.key[:KEY_SHOWN],
        r.header.user or "-",
        when(r.header.created, short),
        when(r.last_access(idle_timeout), short),
        when(r.expires, short),
        str(r.size),
        ",".join(r.flags(now)) or "-",
    ]


def _page(
    store: Store, metas: list[Meta], offset: int, limit: int, now: float
) -> tuple[list[Record], int | None]:
    """Up to ``limit`` sessions from record ``offset`` on, reading only as far as needed;
    and the offset where the next page starts (None: no more records)."""
    page: list[Record] = []
    at = offset
    while at < len(metas) and len(page) < limit:
        found = load(store, metas[at], now)
        at += 1
        if found is not None and found.is_session:
            page.append(found)
    return page, at if at < len(metas) else None


def _matching(
    store: Store, metas: list[Meta], user: str | None, expired: bool, now: float, out: Output
) -> list[Record]:
    """Every session the filters keep, in listing order."""
    if user is not None and not expired:
        # the user's index names their sessions: read those, not the whole store
        keys = {s.key for s in users.user_sessions(store, user)}
        metas = [m for m in metas if m.key in keys]
    with out.progress("reading sessions", len(metas)) as advance:
        found = []
        for r in load_all(store, metas, now, advance):
            if not r.is_session or (expired and not r.expired(now)):
                continue
            if user is not None and (r.header is None or r.header.user != user):
                continue
            found.append(r)
    return found


# --- show -------------------------------------------------------------------------------


@click.command("show", short_help="Show one record: header and data.")
@click.argument("key")
@store_option
@idle_option
@output_options
def show(key: str, url: str, idle_timeout: float, plain: bool, as_json: bool) -> None:
    """Show one record: its header fields and its data as JSON.

    KEY is a storage key as ls shows it; any unique start of one will do.
    """
    out = Output(plain, as_json)
    with opened(url) as store:
        now = store.clock()
        meta = resolve(store, key)
        full = meta.key
        found = load(store, meta, now)
    if found is None:
        raise Failure(f"the record {full[:KEY_SHOWN]} is gone")
    if found.header is None:
        raise Failure(f"the record {full[:KEY_SHOWN]} is not a session (corrupt or unreadable)")
    try:
        data = codec.decode(found.data, found.header.big)
    except ValueError as e:
        raise Failure(f"the record {full[:KEY_SHOWN]} has data that does not decode: {e}") from e
    fields = _fields(found, now, idle_timeout)
    if as_json:
        out.json({**fields, "data": data})
        return
    out.pairs([(name, _text(value)) for name, value in fields.items()])
    text = orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    out.line("data:")
    if out.console is not None:
        out.console.print_json(text)
    else:
        click.echo(text)


def _fields(r: Record, now: float, idle_timeout: float) -> dict[str, Any]:
    h = r.header
    assert h is not None
    kind = "index" if h.index else "tombstone" if h.successor else "session"
    fields: dict[str, Any] = {"key": r.key, "kind": kind, "user": h.user, "created": h.created}
    if not h.index:
        fields["last_access"] = r.last_access(idle_timeout)
    fields["expires"] = r.expires
    fields["stored_until"] = r.stored_until
    fields["expired"] = r.expired(now)
    fields["locked"] = r.locked
    fields["size"] = r.size
    fields["idle_timeout"] = h.idle  # None: the app's; set by remember()
    fields["absolute_timeout"] = h.absolute
    fields["retention"] = h.retention
    fields["browser_cookie"] = h.browser
    fields["fingerprinted"] = h.fingerprint is not None  # a keyed hash: never shown
    if h.successor is not None:  # the sealed successor id itself is never shown
        fields["grace_until"] = h.grace_until
    return fields


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value > 1e9:  # a Unix time
        return when(value)
    return str(value)


# --- rm ---------------------------------------------------------------------------------


@click.command("rm", short_help="Remove a session, or all of a user's.")
@click.argument("key", required=False)
@click.option("--user", metavar="USER", help="Remove every session of this user.")
@click.option("--keep", metavar="KEY", help="With --user: keep this session.")
@store_option
def rm(key: str | None, user: str | None, keep: str | None, url: str) -> None:
    """Remove one session (KEY, or a unique start of it) or all of a user's (--user)."""
    if (key is None) == (user is None):
        raise click.UsageError("give either KEY or --user USER")
    if keep is not None and user is None:
        raise click.UsageError("--keep goes with --user")
    with opened(url) as store:
        if key is not None:
            store.destroy(resolve(store, key).key)
            removed = 1
        else:
            assert user is not None
            kept = resolve(store, keep).key if keep is not None else None
            removed = users.logout_user(store, user, keep=kept)
    click.echo(f"removed {removed} session(s)")


# --- stats ------------------------------------------------------------------------------


@click.command("stats", short_help="Count the records in a store.")
@store_option
@output_options
def stats(url: str, plain: bool, as_json: bool) -> None:
    """Count sessions: live, expired but kept, locked, index records, bytes, users.

    Reads every record's header (in batches of 500 where the store can).
    """
    out = Output(plain, as_json)
    counts = dict.fromkeys(
        ("live sessions", "expired but kept", "tombstones", "locked now", "index records"), 0
    )
    counts |= {"unreadable": 0, "payload bytes": 0}
    users: set[str] = set()
    with opened(url) as store:
        now = store.clock()
        metas = list(store.scan())
        with out.progress("reading headers", len(metas)) as advance:
            for r in load_all(store, metas, now, advance):
                counts["payload bytes"] += r.size
                counts["locked now"] += r.locked
                if r.header is None:
                    counts["unreadable"] += 1
                elif r.is_index:
                    counts["index records"] += 1
                elif r.tombstone:
                    counts["tombstones"] += 1
                elif r.expired(now):
                    counts["expired but kept"] += 1
                else:
                    counts["live sessions"] += 1
                    if r.header.user is not None:
                        users.add(r.header.user)
    counts["logged-in users"] = len(users)
    if as_json:
        out.json({name.replace(" ", "_").replace("-", "_"): n for name, n in counts.items()})
        return
    out.pairs([(name, str(n)) for name, n in counts.items()])
