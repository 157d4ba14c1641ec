"""Serving the demo: a threaded wsgiref server, and the Secure-cookie rule for plain HTTP.

Browsers drop a ``Secure`` cookie set over plain HTTP, except from a potentially
trustworthy origin (``localhost``, ``127.0.0.0/8``, ``::1``). Served over plain HTTP on any
other address, every page would start a new session that the browser then forgets, so
:func:`serve` refuses unless told which way to go: ``plain_http=True`` drops ``Secure``
(with a warning), ``plain_http=False`` keeps it because a TLS proxy sits in front.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from ..config import Config
from ..errors import ConfigError
from .app import DEFAULT_IDLE, WSGIApp, demo_config, make_app, public_store_url


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request, so parallel requests really overlap."""

    daemon_threads = True  # Ctrl-C does not wait for a request stuck on a lock
    request_queue_size = 64  # a burst of parallel fetches must not be refused


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would bury the lines that matter (store errors)


def make_demo_server(host: str, port: int, app: WSGIApp | None = None) -> ThreadingWSGIServer:
    """A bound, threaded server; ``app`` may be set later (``server.set_app``).

    ConfigError in one line when the address cannot be bound.
    """
    try:
        server = ThreadingWSGIServer((host, port), QuietHandler)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    if app is not None:
        server.set_app(app)
    return server


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def cookie_secure(host: str, plain_http: bool | None) -> bool:
    """Whether the session cookie keeps ``Secure``; ConfigError when that is not clear."""
    if plain_http:
        return False
    if plain_http is None and not is_loopback(host):
        raise ConfigError(
            f"{host} is not a loopback address and the demo speaks plain HTTP, so browsers "
            "would drop its Secure cookie: pass --plain-http (cookie without Secure), or "
            "serve it behind a TLS proxy and pass --no-plain-http"
        )
    return True


def serve(
    store: str,
    host: str,
    port: int,
    plain_http: bool | None = None,
    *,
    idle: float = DEFAULT_IDLE,
) -> None:
    """Run the demo until Ctrl-C (``coatcheck demo``).

    ``plain_http``: None decides by address (loopback keeps ``Secure``, any other address
    refuses to start); True drops ``Secure`` from the cookie; False keeps it (TLS in
    front). ``idle``: the idle timeout in seconds, short so that expiry can be watched.
    """
    secure = cookie_secure(host, plain_http)
    config: Config = demo_config(idle=idle, secure=secure)
    server = make_demo_server(host, port)
    with server:
        bound = server.server_port
        label = f"{host}:{bound}"
        server.set_app(make_app(store, config, server_label=label))
        _log_to_stderr()
        where = f"[{host}]" if ":" in host else host
        print(f"coatcheck demo on http://{where}:{bound}/ (store {public_store_url(store)})")
        if not secure:
            print(
                "warning: plain HTTP: the session cookie goes without Secure and anyone on "
                "the network path can read it; use TLS for anything but a demo",
                file=sys.stderr,
            )
        print("Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def _log_to_stderr() -> None:
    log = logging.getLogger("coatcheck.demo")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("coatcheck demo: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
