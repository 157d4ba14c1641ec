"""The demo web app: PHP's classic session page, on coatcheck (WSGI, standard library only)."""

from .app import make_app

__all__ = ["make_app"]
