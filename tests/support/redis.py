"""Cleanup for redis test namespaces (moved out of the production module)."""

from coatcheck.stores.redis import drop_namespace

__all__ = ["drop_namespace"]
