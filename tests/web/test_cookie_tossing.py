"""Duplicate session cookies (cookie tossing) through Starlette, FastAPI, WSGI and Flask;
Django runs the same check in its own process (django_cases.py)."""

from __future__ import annotations

from tests.web.conformance import Web
from tests.web.cookie_tossing import duplicate_cookies_use_none
from tests.web.test_web_conformance import web

__all__ = ["web"]  # the fixture: every adapter's app, as the conformance scenarios use it


def test_different_session_cookies_use_none_of_them(web: Web) -> None:
    duplicate_cookies_use_none(web)
