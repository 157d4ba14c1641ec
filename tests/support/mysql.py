"""Cleanup for mysql test namespaces (moved out of the production module)."""

from coatcheck.stores.mysql import drop_namespace

__all__ = ["drop_namespace"]
