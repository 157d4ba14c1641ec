"""Run Django's own session tests against coatcheck.django; print a JSON report.

Usage: ``python -m tests.web.django_own_runner <dir holding sessions_tests/>``, with
``COATCHECK_OWN_TESTS_STORE`` set. Started in a child process by
tests/web/test_django_own_tests.py, as Django's settings are process-wide.

Three suites: ``SessionTestsMixin`` (every engine's contract) with ``backend =
coatcheck.django.SessionStore``; ``SessionMiddlewareTests`` with Django's own middleware
over ``SESSION_ENGINE = "coatcheck.django"``; and the same tests with
``coatcheck.django.SessionMiddleware`` in place of Django's.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import unittest
from typing import Any
from unittest import mock

_CYCLE = (
    "cycle_key() gives the new key at once, but the old one is deleted when the session is "
    "saved, in the same store call as the write, so a request that fails after it keeps the "
    "old session; Django deletes the old key inside cycle_key()"
)
_DB_MODEL = (
    "reads Django's database model (the django_session table) directly; coatcheck sessions "
    "live in the coatcheck store"
)
EXPECTED_FAILURES: dict[str, str] = {
    "SessionTests.test_cycle": _CYCLE,
    "SessionTests.test_cycle_async": _CYCLE,
    "SessionTests.test_session_key_valid_string_saved": (
        "a session key is a coatcheck id (32+ random bytes, base64url): any other string, "
        "such as '12345678', is refused when set, not only when the store has no such session"
    ),
    "DjangoMiddlewareTests.test_empty_session_saved": _DB_MODEL,
    "CoatcheckMiddlewareTests.test_empty_session_saved": _DB_MODEL
    + "; and it changes request.session after the response was made, which coatcheck "
    "refuses (SessionClosed: the cookie could not be sent any more)",
}
"""``Suite.test`` -> why coatcheck differs on purpose (also in docs/migrating/django.md)."""


def main(source: str) -> int:
    sys.path.insert(0, source)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.web.django_own_settings"
    import django

    django.setup()
    from django.test import SimpleTestCase
    from django.test.utils import setup_databases, setup_test_environment
    from sessions_tests import tests as djangos

    import coatcheck.django

    setup_test_environment()
    setup_databases(verbosity=0, interactive=False)  # the middleware tests are TestCases

    class SessionTests(djangos.SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
        backend = coatcheck.django.SessionStore

    class DjangoMiddlewareTests(djangos.SessionMiddlewareTests):  # type: ignore[misc]
        pass  # Django's middleware; SESSION_ENGINE is coatcheck.django

    class CoatcheckMiddlewareTests(djangos.SessionMiddlewareTests):  # type: ignore[misc]
        def setUp(self) -> None:
            ours = mock.patch.object(
                djangos, "SessionMiddleware", coatcheck.django.SessionMiddleware
            )
            ours.start()
            self.addCleanup(ours.stop)

    report = {}
    for suite in (SessionTests, DjangoMiddlewareTests, CoatcheckMiddlewareTests):
        for name, _ in EXPECTED_FAILURES.items():
            owner, _, test = name.partition(".")
            if owner == suite.__name__:
                setattr(suite, test, _expect_failure(getattr(suite, test)))
        result = _Recorder()
        unittest.defaultTestLoader.loadTestsFromTestCase(suite).run(result)
        report[suite.__name__] = result.report
    print(json.dumps(report))
    return 0


def _expect_failure(test: Any) -> Any:
    """``test`` marked as an expected failure; an async test is run through async_to_sync
    here, as Django's own conversion of async tests would drop the mark."""
    from asgiref.sync import async_to_sync

    def run(self: Any) -> None:
        if inspect.iscoroutinefunction(test):
            async_to_sync(test)(self)
        else:
            test(self)

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return unittest.expectedFailure(run)


class _Recorder(unittest.TestResult):
    def __init__(self) -> None:
        super().__init__()
        self.report: dict[str, list[Any]] = {
            k: [] for k in ("passed", "expected", "unexpected", "failed", "skipped")
        }

    def _add(self, kind: str, test: Any, detail: str = "") -> None:
        self.report[kind].append([test._testMethodName, detail[-3000:]])

    def addSuccess(self, test: Any) -> None:
        self._add("passed", test)

    def addFailure(self, test: Any, err: Any) -> None:
        self._add("failed", test, self._exc_info_to_string(err, test))

    def addError(self, test: Any, err: Any) -> None:
        self._add("failed", test, self._exc_info_to_string(err, test))

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        self._add("expected", test)

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._add("unexpected", test)

    def addSkip(self, test: Any, reason: str) -> None:
        self._add("skipped", test, reason)

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            self._add("failed", test, self._exc_info_to_string(err, test))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
