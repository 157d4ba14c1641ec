"""The ``coatcheck`` command: the demo, and store housekeeping.

The store comes from ``--store URL`` or the ``COATCHECK_STORE`` environment variable. A bad
URL, an unreachable store or a missing schema prints one line and exits with status 2.
Only ``init`` creates a schema; ``gc`` and ``stats`` never create anything.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from . import open_store

DEFAULT_STORE = "sqlite:///coatcheck-demo.db"
FAILED = 2


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # request lines would print cookies of nobody, but keep the console readable


def _demo(args: argparse.Namespace) -> int:
    from .demo import make_app

    app = make_app(args.store)
    with make_server(args.host, args.port, app, handler_class=_QuietHandler) as server:
        print(f"coatcheck demo on http://{args.host}:{server.server_port}/ (store {args.store})")
        print("Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


_PROBE = "0" * 64  # a storage key no session has: reading it proves the store answers


def _init(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        create = getattr(store, "create_schema", None)
        if create is None:
            store.validate_id(_PROBE)
            print("the store answers; it needs no schema")
        else:
            create()
            print("schema ready")
    return 0


def _gc(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        store.validate_id(_PROBE)  # stores that expire keys themselves have no gc to fail
        print(f"removed {store.gc()} expired session(s)")
    return 0


def _stats(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        metas = list(store.scan())
        locked = sum(m.locked for m in metas)
        size = sum(m.size for m in metas)
        print(f"live sessions: {len(metas)}  locked now: {locked}  payload bytes: {size}")
    return 0


def _reencrypt(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .wrappers import EncryptedStore, reencrypt

    store = open_store(args.store)
    if not isinstance(store, EncryptedStore):
        raise ConfigError("reencrypt needs the keys: add ?encrypt=env:VARIABLE to the store URL")
    with store:
        print(f"re-encrypted {reencrypt(store)} session(s) under the newest key")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coatcheck", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo web app")
    store = os.environ.get("COATCHECK_STORE") or DEFAULT_STORE
    where = "store URL (default: $COATCHECK_STORE, else %(default)s)"
    demo.add_argument("--store", default=store, help=where)
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(run=_demo)
    for name, run, text in (
        ("init", _init, "create the store's schema (tables, indexes) if it needs one"),
        ("gc", _gc, "delete expired sessions now"),
        ("stats", _stats, "count live sessions"),
        ("reencrypt", _reencrypt, "rewrite encrypted sessions under the newest key"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--store", default=store, help=where)
        cmd.set_defaults(run=run)
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except Exception as e:  # a CLI prints the reason in one line, not a traceback
        print(f"coatcheck: {e}", file=sys.stderr)
        return FAILED
    return result


if __name__ == "__main__":
    sys.exit(main())
