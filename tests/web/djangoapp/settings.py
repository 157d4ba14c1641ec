"""Test settings: the example project's, with stores in a temporary directory.

``COATCHECK_TEST_DIR`` (set by tests/web/test_django.py) names the directory.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples" / "django_app"))

from exampleproject.settings import *  # noqa: F403

_dir = Path(os.environ["COATCHECK_TEST_DIR"])
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _dir / "db.sqlite3"}}
COATCHECK = {
    "STORE": f"sqlite:///{_dir / 'sessions.db'}",
    "CONFIG": {"gc_probability": 0, "lock_wait": 0.2},
}
ROOT_URLCONF = "tests.web.djangoapp.urls"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only
