"""The demo web app: a session as the server sees it, on coatcheck (WSGI, standard library).

``coatcheck demo`` calls :func:`serve`; tests build the app with :func:`make_app`.
"""

from .app import DEFAULT_IDLE, DemoApp, demo_config, make_app
from .server import make_demo_server, serve

__all__ = ["DEFAULT_IDLE", "DemoApp", "demo_config", "make_app", "make_demo_server", "serve"]
