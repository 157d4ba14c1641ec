"""Test-only helpers: per-store cleanup (``drop_namespace``) and fault injection."""
