"""The ``coatcheck`` command: the demo, and store housekeeping."""

from __future__ import annotations

import argparse
import contextlib
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from . import open_store

DEFAULT_STORE = "sqlite:///coatcheck-demo.db"


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


def _gc(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        print(f"removed {store.gc()} expired session(s)")
    return 0


def _stats(args: argparse.Namespace) -> int:
    with open_store(args.store) as store:
        metas = list(store.scan())
        locked = sum(m.locked for m in metas)
        size = sum(m.size for m in metas)
        print(f"live sessions: {len(metas)}  locked now: {locked}  payload bytes: {size}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coatcheck", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo web app")
    demo.add_argument("--store", default=DEFAULT_STORE, help="store URL (default: %(default)s)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.set_defaults(run=_demo)
    for name, run, text in (
        ("gc", _gc, "delete expired sessions now"),
        ("stats", _stats, "count live sessions"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--store", default=DEFAULT_STORE, help="store URL (default: %(default)s)")
        cmd.set_defaults(run=run)
    args = parser.parse_args(argv)
    try:
        result: int = args.run(args)
    except Exception as e:  # a CLI prints the reason, not a traceback
        print(f"coatcheck: {e}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
