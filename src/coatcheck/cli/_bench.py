"""``bench``: how fast the session cycle runs on a store, and ``demo``."""

from __future__ import annotations

import statistics
import time

import click

from .. import Client, Config, SessionManager
from ..ids import storage_key
from ._base import Output, count_option, opened, output_options, store_option

CLIENT = Client("coatcheck bench")


@click.command("bench", short_help="Time the session cycle on a store.")
@store_option
@count_option("--sessions", 100, "Sessions to make.")
@count_option("--requests", 1000, "Cycles to time.")
@output_options
def bench(url: str, sessions: int, requests: int, plain: bool, as_json: bool) -> None:
    """Time the session cycle on a store: start, set a key, write_close.

    Makes --sessions sessions, runs --requests cycles over them in turn (each one a request
    to an existing session), then deletes the sessions it made.
    """
    out = Output(plain, as_json)
    with opened(url) as store:
        manager = SessionManager(store, Config(gc_probability=0))
        made: list[str] = []  # raw ids, held in memory only to load the sessions again
        try:
            with out.progress("making sessions", sessions) as tick:
                for _ in range(sessions):
                    s = manager.start(client=CLIENT)
                    s["n"] = 0
                    s.write_close()
                    made.append(s.id)
                    tick(1)
            took = []
            with out.progress("timing requests", requests) as tick:
                for i in range(requests):
                    started = time.perf_counter()
                    s = manager.start(made[i % sessions], client=CLIENT)
                    s["n"] = i
                    s.write_close()
                    took.append(time.perf_counter() - started)
                    tick(1)
        finally:
            for sid in made:
                store.destroy(storage_key(sid))
    total = sum(took)
    cuts = statistics.quantiles(took, n=100, method="inclusive") if len(took) > 1 else took * 99
    result = {"requests": requests, "ops_per_s": requests / total if total else 0.0}
    result |= {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}
    if as_json:
        out.json(result)
        return
    out.pairs(
        [
            ("requests", str(requests)),
            ("operations/s", f"{result['ops_per_s']:.0f}"),
            ("p50", f"{result['p50_ms']:.2f} ms"),
            ("p99", f"{result['p99_ms']:.2f} ms"),
        ]
    )


@click.command("demo")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--plain-http/--no-plain-http",
    default=None,
    help="Send the cookie without Secure (plain HTTP), or keep Secure (TLS in front)."
    " Default: keep it on loopback addresses, refuse to start on others.",
)
@click.option(
    "--idle",
    type=click.FloatRange(min=1),
    default=120,
    show_default=True,
    metavar="SECONDS",
    help="The demo's idle timeout: short, so that expiry and unexpire can be watched.",
)
def demo(url: str, host: str, port: int, plain_http: bool | None, idle: float) -> None:
    """Run the demo web app until Ctrl-C."""
    from ..demo import serve

    serve(store=url, host=host, port=port, plain_http=plain_http, idle=idle)
