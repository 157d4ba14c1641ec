"""Settings of a minimal Django project whose sessions live in coatcheck."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"  # noqa: S105  # replace in a real project
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",  # only for `manage.py clearsessions`; no table is used
    "django.contrib.messages",
]

MIDDLEWARE = [
    "coatcheck.django.SessionMiddleware",  # in place of Django's SessionMiddleware
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "exampleproject.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
USE_TZ = True

# --- sessions ---------------------------------------------------------------------------
SESSION_ENGINE = "coatcheck.django"
COATCHECK = {
    "STORE": f"sqlite:///{BASE_DIR / 'sessions.db'}",
    "CONFIG": {"idle_timeout": 1800, "absolute_timeout": 12 * 3600},
}
# Django's middleware sets the cookie, so Django's cookie settings apply. Django's default
# for SECURE is False: turn it on everywhere but plain-http development.
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
