"""snapsync: CDC pipeline for multi-tenant medical-billing databases (CLI, local stack)."""

__version__ = "0.1.0"
