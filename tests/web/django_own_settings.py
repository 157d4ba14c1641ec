"""Settings for Django's own session tests run against coatcheck (tests/web/django_own_runner.py).

``COATCHECK_OWN_TESTS_STORE`` (set by tests/web/test_django_own_tests.py) is the store URL.
"""

import os

SECRET_KEY = "coatcheck-tests-only"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.sessions", "sessions_tests"]  # the models Django's tests import
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
SESSION_ENGINE = "coatcheck.django"
COATCHECK = {
    "STORE": os.environ["COATCHECK_OWN_TESTS_STORE"],
    "CONFIG": {"gc_probability": 0, "lock_wait": 0.2},
}
