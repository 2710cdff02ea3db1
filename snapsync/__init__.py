"""snapsync: CDC pipeline for multi-tenant medical-billing databases (CLI, local stack)."""

from snapsync.schemas import VERSION as __version__  # noqa: F401 - the one number
