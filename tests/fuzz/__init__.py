"""Property-based tests (hypothesis) and coverage-guided fuzz targets (atheris).

The ``fuzz_*.py`` modules are atheris entry points, not pytest modules: run them as
``python -m tests.fuzz.fuzz_codec`` (see their docstrings).
"""
