"""Django integration: ``SESSION_ENGINE = "coatcheck.django"``.

Settings::

    SESSION_ENGINE = "coatcheck.django"
    COATCHECK = {"STORE": "sqlite:///sessions.db", "CONFIG": {"lock_mode": "exclusive"}}
    MIDDLEWARE = [..., "coatcheck.django.SessionMiddleware", ...]  # instead of Django's

The system checks ``coatcheck.W001`` (cookie not Secure) and ``W002`` (not HttpOnly) are
registered on import; list ``"coatcheck.django"`` in ``INSTALLED_APPS`` so that
``manage.py check --deploy`` runs them. See docs/web/django.md.
"""

from .web import django_checks  # noqa: F401  (registers the system checks)
from .web.django_middleware import SessionMiddleware, read_only, session_options
from .web.django_session import SessionStore, manager, migrate_from, web_options

__all__ = [
    "SessionMiddleware",
    "SessionStore",
    "manager",
    "migrate_from",
    "read_only",
    "session_options",
    "web_options",
]
