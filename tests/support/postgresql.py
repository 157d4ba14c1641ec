"""Cleanup for postgresql test namespaces (moved out of the production module)."""

from coatcheck.stores.postgresql import drop_namespace

__all__ = ["drop_namespace"]
