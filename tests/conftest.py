"""Fixtures shared by the whole suite. The store matrix lives in conformance/test_stores.py."""

from __future__ import annotations

from coatcheck.testing import aw

__all__ = ["aw"]
