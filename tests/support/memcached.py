"""Cleanup for memcached test namespaces (moved out of the production module)."""

from coatcheck.stores.memcached import drop_namespace

__all__ = ["drop_namespace"]
