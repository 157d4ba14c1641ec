"""Django's own session tests (``SessionTestsMixin``) against coatcheck.django.SessionStore.

The source distribution of the installed Django is fetched with pip (cached between runs
under ``COATCHECK_DJANGO_SRC`` or the temp dir) and only ``tests/sessions_tests/`` is
extracted; nothing of Django's is kept in this repository. The tests run in a child process
(tests/web/django_own_runner.py), as Django's settings are process-wide, once per store.
The known, intentional differences are expected failures, listed with their reasons in the
runner and in docs/migrating/django.md: a new failure fails here, and so does an expected
failure that starts passing.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.services import in_ci, require
from tests.stores import ALL, StoreCase

django = pytest.importorskip("django")

ROOT = Path(__file__).resolve().parents[2]
STORES = {case.name: case for case in ALL if case.name in ("sqlite", "redis")}
pytestmark = pytest.mark.xdist_group("django-own-tests")  # one download, one worker


def _unavailable(message: str) -> None:
    if in_ci():
        pytest.fail(f"{message}, and CI is set: Django's own tests may not skip under CI")
    pytest.skip(message)


@pytest.fixture(scope="module")
def django_tests() -> Path:
    """A directory holding Django's ``sessions_tests`` package, for the installed version."""
    version = django.__version__
    cache = Path(os.environ.get("COATCHECK_DJANGO_SRC") or Path(tempfile.gettempdir()))
    target = cache / f"coatcheck-django-{version}-tests"
    if (target / "sessions_tests" / "tests.py").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache, prefix=".coatcheck-django-"))
    pip = [sys.executable, "-m", "pip", "download", f"django=={version}"]
    pip += ["--no-deps", "--no-binary", ":all:", "-q", "-d", str(work)]
    run = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    archives = list(work.glob("*.tar.gz"))
    if run.returncode != 0 or not archives:
        _unavailable(f"could not download Django {version}'s sources: {run.stderr[-500:]}")
    prefix = f"{archives[0].name.removesuffix('.tar.gz')}/tests/"
    with tarfile.open(archives[0]) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix + "sessions_tests/")]
        for member in members:
            member.name = member.name.removeprefix(prefix)
        tar.extractall(work / "tests", members=members, filter="data")
    with contextlib.suppress(OSError):  # atomic: a concurrent run keeps its own or ours
        (work / "tests").rename(target)
    return target if target.is_dir() else work / "tests"


@pytest.mark.parametrize("store", sorted(STORES))
def test_djangos_session_tests(store: str, django_tests: Path, tmp_path: Path) -> None:
    case: StoreCase = STORES[store]
    endpoint = case.endpoint()
    if endpoint is not None:
        require(*endpoint, case.name)
    url = case.make_url(tmp_path)
    env = {**os.environ, "COATCHECK_OWN_TESTS_STORE": url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "tests.web.django_own_runner", str(django_tests)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        if case.cleanup is not None:
            case.cleanup(url)
    assert run.returncode == 0, run.stderr[-5000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    problems = []
    for suite, results in report.items():
        names = {kind: [name for name, _ in tests] for kind, tests in results.items()}
        total = sum(len(tests) for tests in results.values())
        print(
            f"Django {django.__version__} {suite} on {store}: {len(names['passed'])} passed, "
            f"{len(names['expected'])} expected failures, {total} in all"
        )
        problems += [f"{suite}.{name} FAILED:\n{detail}" for name, detail in results["failed"]]
        problems += [
            f"{suite}.{name} passes: remove it from EXPECTED_FAILURES"
            for name in names["unexpected"]
        ]
        problems += [f"{suite}.{name} skipped" for name in names["skipped"]]
        assert len(names["passed"]) >= 10, names  # the suite really ran
    assert not problems, "\n".join(problems)
