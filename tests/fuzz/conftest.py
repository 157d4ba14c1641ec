"""Hypothesis profiles for the property tests.

Pick one with ``HYPOTHESIS_PROFILE``; CI (``.ci/run`` exports ``CI``) gets ``ci`` by default:

- ``dev``: the local default; random, with the example database to replay failures.
- ``ci``: derandomized (the same examples every run, so a red build is never a fluke of
  the draw), no database, and the reproduction blob printed with any failure.
- ``thorough``: 20 times the examples, for a fuzzing session by hand.

Tests ask for a number of examples through :func:`tests.fuzz.strategies.examples`, which
scales it by the profile, so ``thorough`` deepens every test at once.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}

settings.register_profile("dev", max_examples=100, **_COMMON)
settings.register_profile(
    "ci", max_examples=100, derandomize=True, database=None, print_blob=True, **_COMMON
)
settings.register_profile("thorough", max_examples=2000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
