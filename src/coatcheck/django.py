"""Django integration: ``SESSION_ENGINE = "coatcheck.django"``.

Settings::

    SESSION_ENGINE = "coatcheck.django"
    COATCHECK = {"STORE": "sqlite:///sessions.db", "CONFIG": {"lock_mode": "exclusive"}}
    MIDDLEWARE = [..., "coatcheck.django.SessionMiddleware", ...]  # instead of Django's

See docs/web/django.md.
"""

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
