"""Django system checks for the session cookie coatcheck sends (``manage.py check --deploy``).

Django's own ``security.W010``/``W013`` look at ``SESSION_COOKIE_SECURE``/``_HTTPONLY`` only
when Django's session middleware is installed, so with coatcheck's in its place they never
fire. These take their place, as deployment checks like Django's, and are registered when
``coatcheck.django`` is imported (list it in ``INSTALLED_APPS`` so ``manage.py check`` always
runs them).

- ``coatcheck.W001``: the session cookie would be sent without ``Secure``.
- ``coatcheck.W002``: the session cookie would be sent without ``HttpOnly``.
- ``coatcheck.E001``: the ``COATCHECK`` settings are not a valid configuration.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core import checks  # type: ignore[import-untyped]

from ..errors import ConfigError
from .django_session import _config

ENGINE = "coatcheck.django"
MIDDLEWARE = {
    "coatcheck.django.SessionMiddleware",
    "coatcheck.web.django_middleware.SessionMiddleware",
}


def _cookie_flags() -> tuple[bool, bool] | None:
    """(Secure, HttpOnly) of the session cookie as it will be sent; None if coatcheck is unused."""
    if MIDDLEWARE & set(getattr(settings, "MIDDLEWARE", None) or ()):
        config = _config(getattr(settings, "COATCHECK", {}))  # coatcheck's middleware writes it
        return config.cookie_secure, config.cookie_httponly
    if getattr(settings, "SESSION_ENGINE", None) == ENGINE:  # Django's middleware writes it
        return bool(settings.SESSION_COOKIE_SECURE), bool(settings.SESSION_COOKIE_HTTPONLY)
    return None


def check_session_cookie(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when the session cookie would go out without Secure or without HttpOnly."""
    try:
        flags = _cookie_flags()
    except ConfigError as e:
        return [checks.Error(f"COATCHECK settings: {e}", id="coatcheck.E001")]
    if flags is None:
        return []
    secure, httponly = flags
    found: list[checks.CheckMessage] = []
    if not secure:
        found.append(
            checks.Warning(
                "The session cookie is sent without Secure: over plain HTTP anyone on the"
                " network can read it and take the session over.",
                hint="Remove SESSION_COOKIE_SECURE = False (coatcheck's cookie is Secure unless"
                " you turn it off) or set it to True.",
                id="coatcheck.W001",
            )
        )
    if not httponly:
        found.append(
            checks.Warning(
                "The session cookie is sent without HttpOnly: any script on the page, an XSS"
                " payload included, can read it.",
                hint="Set SESSION_COOKIE_HTTPONLY = True (Django's default).",
                id="coatcheck.W002",
            )
        )
    return found


checks.register(check_session_cookie, checks.Tags.security, deploy=True)
