"""The Django session engine, driven through django.test.Client and examples/django_app.

Django's settings are process-wide, so the cases (tests/web/django_cases.py) run in a child
pytest process of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django")

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("django_cases.py")


def test_django_cases_in_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "COATCHECK_TEST_DIR": str(tmp_path)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(run.stdout[-5000:], run.stderr[-2000:])
    assert run.returncode == 0, run.stdout[-5000:]
    assert " passed" in run.stdout and "failed" not in run.stdout and "skipped" not in run.stdout


def test_example_project_passes_django_checks() -> None:
    run = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT / "examples" / "django_app",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "no issues" in run.stdout
